"""allocator.keep_freed_memory: a U-Net step on CPU stops page-faulting its activation maps."""

import subprocess
import sys

import pytest

# A sampling step of the small preset at 256 x 256 with cached guidance, after one warm-up
# step; prints the fewest page faults of five steps (the fewest, since the kernel may reclaim
# idle pages during any one step, most under a loaded machine's memory pressure).
STEP_FAULTS = """
import resource, sys, torch
from rawdiffusion.allocator import keep_freed_memory
from rawdiffusion.model import build_model
if sys.argv[1] == "keep":
    assert keep_freed_memory()
torch.manual_seed(0)
net = build_model("small").eval()
x, rgb, t = torch.randn(1, 4, 256, 256), torch.rand(1, 3, 256, 256), torch.tensor([500])
with torch.no_grad():
    guidance = net.encode_guidance(rgb)
    net(x, t, guidance=guidance)
    faults = []
    for _ in range(5):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        net(x, t, guidance=guidance)
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(min(faults))
"""


def step_faults(mode: str) -> int:
    # A process of its own: the setting is process-wide and must not leak into other tests.
    result = subprocess.run([sys.executable, "-c", STEP_FAULTS, mode], capture_output=True,
                            text=True, check=True)
    return int(result.stdout.split()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt: Linux only")
def test_keeping_freed_memory_removes_page_faults_from_a_step():
    default, kept = step_faults("default"), step_faults("keep")
    # By default each step maps its activation maps afresh: 15,000 to 45,000 4 KiB pages here.
    assert default > 5_000
    # Kept: the same blocks serve every step (a few faults remain in some steps, from the
    # kernel reclaiming idle pages now and then).
    assert kept < default / 10
