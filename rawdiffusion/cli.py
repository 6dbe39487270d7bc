"""The `rawdiffusion` command line: one console script with subcommands.

Errors a user can fix (errors.UserError: a bad file, a missing folder) end in one line naming
the file and the reason, never a traceback; any other exception is a bug and keeps its
traceback. The subcommands import what they use when they run (inside the cmd_* functions):
the command, its --help and `info` start without torch, Hydra or colour-science.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import math
import os
import sys
from pathlib import Path

from .atomic import make_folder
from .cpus import set_threads
from .errors import SettingError, UserError, run_reported
from .files import RAW_MAX_PIXELS, not_a_file, shown
from .settings import DEFAULTS, SAMPLERS, Settings

log = logging.getLogger("rawdiffusion")


# ----------------------------------------------------------------------------- info

def cmd_info(args) -> int:
    """One JSON line per readable file; each bad file one `error:` line, and on to the next."""
    from .images import raw_preview, write_png  # here: the other commands start faster
    from .io import read_raw
    from .jobs import attempt

    def info(path) -> None:
        raw = read_raw(path, args.max_pixels)
        print(json.dumps(raw.info()))
        if args.preview:
            write_png(Path(args.preview) / f"{Path(path).stem}.png", raw_preview(raw.packed))

    if args.preview:
        make_folder(Path(args.preview), f"--preview {args.preview}")
    failed = 0
    for path in args.files:
        _, _, failure = attempt(info, path)
        if failure is not None:
            print(f"error: {failure.line}", file=sys.stderr)
            failed += 1
    if failed:
        print(f"{failed} of {len(args.files)} file(s) could not be read", file=sys.stderr)
    return 1 if failed else 0


# ----------------------------------------------------------------------------- prepare

def _report(description: dict, failures, out, keep_going: bool,
            before: set[str] | None = None) -> int:
    """The summary of a prepare command; `before`: the ids of the images prepared in `out`
    before it ran (layout.prepared_images), which it skipped."""
    counts = ", ".join(f"{n} {s}" for s, n in description["splits"].items())
    already = len(before.intersection(description["images"])) if before else 0
    if already:
        now = len(description["images"]) - already
        print(f"{description['name']}: {counts} image(s) in {shown(out)}: {already} already "
              f"prepared, skipped; {now} prepared now")
    else:
        print(f"{description['name']}: {counts} image(s) prepared in {shown(out)}")
    _print_failures("skipped", [f.line for f in failures])
    return 0 if keep_going or not failures else 1


def _print_failures(what: str, lines: list[str]) -> None:
    """'N file(s) <what>:' and one indented line per bad file (jobs.Failure), on stderr."""
    if lines:
        print(f"{len(lines)} file(s) {what}:", file=sys.stderr)
        for line in lines:
            print(f"  {line}", file=sys.stderr)


# prepare's sources: (module, function, its first argument's option, the other options it takes
# besides --out and --workers).
PREPARERS = {
    "folder": ("paired", "prepare_folder", "raw_dir",
               ("name", "test_fraction", "split_seed", "grid", "max_pixels")),
    "fivek": ("fivek", "prepare_fivek", "root",
              ("camera", "test_fraction", "split_seed", "grid", "max_pixels")),
    "nod": ("nod", "prepare_nod", "root", ("camera", "h416", "grid", "max_pixels")),
    "cityscapes": ("cityscapes", "prepare_cityscapes", "root", ("splits",)),
    "bdd": ("bdd", "prepare_bdd", "root", ("splits",)),
}


def cmd_prepare(args) -> int:
    """prepare folder|fivek|nod|cityscapes|bdd: the dataset (resumed where it was prepared
    before), then its summary."""
    from .datasets.layout import prepared_images  # here: the other commands start faster

    module, function, source, options = PREPARERS[args.dataset]
    prepare = getattr(importlib.import_module(f".datasets.{module}", __package__), function)
    before = prepared_images(args.out)
    description, failures = prepare(getattr(args, source), args.out, workers=args.workers,
                                    **{key: getattr(args, key) for key in options})
    return _report(description, failures, args.out, args.keep_going, before)


def cmd_prepare_subsample(args) -> int:
    from .datasets.subsample import prepare_subsample

    description = prepare_subsample(args.dataset, args.out, max_items=args.max_items,
                                    seed=args.seed)
    return _report(description, [], args.out, True)


def cmd_hydra(args) -> int:
    """train, sample, detect train, detect eval: Hydra's command lines (hydra_cli.py)."""
    from .hydra_cli import run

    run(args.hydra_command, args.overrides)  # Hydra exits on its own errors; ours: one line, 2
    return 0


# Photo-reading processes: benchmarks/generation_speed.py. The generator's settings and their
# defaults (steps, sampler, tiles, batch, seed): settings.py.
DEFAULT_READERS = 1
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp")


def _image_files(inputs: list[str]) -> tuple[list[Path], list[str]]:
    """(the image files named, or found directly in the folders named, in order, folders
    sorted; a line "<entry>: <what it is>" for each named path or entry of a folder named like
    an image that is no regular file). Only regular files (or links to them) are taken: a FIFO
    would block its reader, a symlink loop has no file behind it. A UserError when none is
    left, naming the first that is no file, so that one missing photo does not stop the
    others."""
    files, unusable, first = [], [], None
    for name in inputs:
        path = Path(name)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise UserError(f"{shown(path)}: no JPEG, PNG or TIFF images in this folder")
            for p in found:
                problem = not_a_file(p, "photo")
                if problem:
                    unusable.append(f"{shown(p)}: {problem}")
                else:
                    files.append(p)
            continue
        problem = not_a_file(path, "photo")
        if problem:
            line = f"{shown(path)}: " + ("no such file or folder" if problem == "no such file"
                                         else problem)
            first = first or line
            unusable.append(line)
        else:
            files.append(path)
    if not files and first:
        raise UserError(first)
    return files, unusable


def cmd_convert(args) -> int:
    from .convert import ConversionFailed, convert
    from .loading import open_generator, shipped_checkpoint
    from .processes import barrier, merge_manifests, processes, shard

    settings = Settings(steps=args.steps, sampler=args.sampler, tile=args.tile,
                        overlap=args.overlap, batch_size=args.batch_size, seed=args.seed,
                        dtype="bfloat16" if args.bf16 else "float32", iso=args.iso,
                        exposure=args.exposure, white_balance=args.white_balance)
    out = Path(args.out)
    for name in args.inputs:
        if Path(name).is_dir() and Path(name).resolve() == out.resolve():
            raise UserError(f"--out {shown(out)}: also a folder of photos to convert; its "
                            "previews would be read as photos by a rerun: give another --out")
    sources, unusable = _image_files(args.inputs)
    for line in unusable:  # said before the work, as prepare says its skipped entries
        print(f"skipped {line}", file=sys.stderr)
    with processes(cpu=args.cpu) as device:
        gen = open_generator(args.checkpoint or shipped_checkpoint(), settings, device,
                             args.pipeline)
        failures = list(unusable)
        try:
            done, skipped = convert(sources, out, gen, settings.seed, args.format,
                                    figure=args.figure, max_pixels=args.max_pixels,
                                    workers=args.workers)
        except ConversionFailed as e:  # the other photos are converted: report them all
            done, skipped, failures = e.done, e.skipped, unusable + e.failures
        barrier()  # every part of the manifest is written
        rank, world = shard()
        if rank == 0:
            manifest = merge_manifests(out)
            print(f"{done} image(s) converted, {skipped} already done, {len(failures)} failed, "
                  f"by process 0 of {world}; manifest {manifest}")
    _print_failures("failed", failures)  # as prepare reports its skipped files; each process
    return 1 if failures else 0


def _positive_int(text: str) -> int:
    """argparse type of counts: 0 or less is refused naming the option (as `--steps 0`)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def _integer(text: str) -> int:
    """argparse type of the generator's counts (steps, tiles, seed), which settings.Settings
    checks: any integer here."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None


def _number_or_draw(text: str) -> float | str:
    """argparse type of --iso and --exposure: "draw", or a number (settings.Settings checks its
    range)."""
    if text == "draw":
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a number or draw, got {text!r}") from None


def _white_balance(text: str) -> tuple[float, ...] | str:
    """argparse type of --white-balance: "draw", or numbers separated by commas (settings.Settings
    checks that they are three gains above 0)."""
    if text == "draw":
        return text
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"three numbers R,G,B or draw, got {text!r}") from None


def _non_negative_int(text: str) -> int:
    """argparse type of seeds: a negative one is refused naming the option."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {text!r}")
    return value


def _numpy_seed(text: str) -> int:
    """argparse type of the seeds of NumPy's RandomState permutations: 0 to 2**32 - 1."""
    value = _non_negative_int(text)
    if value >= 2**32:
        raise argparse.ArgumentTypeError(f"must be below 2**32, got {text!r}")
    return value


def _fraction(text: str) -> float:
    """argparse type of the test fraction: 0 <= f < 1 (0: every image trains)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1), got {text!r}")
    return value


def _dataset_name(text: str) -> str:
    """argparse type of dataset names, which name run folders: not empty, no path in it."""
    if not text.strip() or text.strip(".") == "" or "/" in text or "\\" in text:
        raise argparse.ArgumentTypeError(f"{text!r} cannot name a folder: give a plain name "
                                         "such as gopro")
    return text


def _folder(text: str) -> str:
    """argparse type of output folders: an existing file there is refused naming the option."""
    if Path(text).exists() and not Path(text).is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a file; give a folder")
    return text


def cmd_baseline_fit(args) -> int:
    from .baselines import fit_baseline
    from .datasets.layout import PreparedDataset

    result = fit_baseline(PreparedDataset(args.dataset), args.kind, args.out, split=args.split)
    camera = result["camera"]
    fit = result["fit"]
    summary = (f"{result['kind']} baseline for {camera['make']} {camera['model']} "
               f"({camera['cfa']}, {_noise_words(camera)})")
    if "psnr_rggb_fit" in fit:
        summary += (f", fitted on {fit['pixels']} pixels of {fit['samples']} {args.split} "
                    f"samples (PSNR of the fit over all of them, 4 channels: "
                    f"{fit['psnr_rggb_fit']:.2f} dB)")
    print(f"wrote {args.out}: {summary}")
    return 0


def cmd_pipeline_fit(args) -> int:
    from .pipeline import fit_pipeline, save_pipeline

    out = Path(args.out)
    if out.is_dir():
        raise UserError(f"--out {args.out}: a folder; --out is the pipeline file to write, e.g. "
                        f"{out / 'pipeline.json'}")
    if not out.parent.is_dir():
        raise UserError(f"--out {args.out}: its folder {out.parent} does not exist")
    named = {Path(p).resolve() for pair in args.pair for p in pair}
    if out.resolve() in named:
        raise UserError(f"--out {args.out}: one of the --pair files; writing the pipeline "
                        "would replace it: give another --out")
    pipeline = fit_pipeline([tuple(pair) for pair in args.pair],
                            progress=lambda line: print(line, file=sys.stderr))
    save_pipeline(args.out, pipeline)
    fitted = pipeline.fitted_on
    print(f"wrote {args.out}: fitted on {len(args.pair)} pair(s), {fitted['pixels']} guide "
          f"pixels; the photos against their canonical renderings {fitted['identity_psnr']:.2f} "
          f"dB, undone {fitted['fit_psnr']:.2f} dB (PSNR in linear RGB)")
    return 0


def _noise_words(camera: dict) -> str:
    """How a summary names a stored camera's noise model."""
    noise = camera.get("noise")
    if not noise:
        return "no noise model"
    lo, hi = min(noise["isos"]), max(noise["isos"])
    return (f"noise model of {len(noise['isos'])} image(s) at ISO "
            f"{lo:g}" + (f" to {hi:g}" if hi > lo else ""))


def cmd_export(args) -> int:
    from .baselines import is_baseline_file
    from .checkpoint import export_checkpoint, load_checkpoint
    from .datasets.layout import PreparedDataset

    if Path(args.checkpoint).is_file() and is_baseline_file(args.checkpoint):
        raise UserError(f"{args.checkpoint}: a baseline file, already small and shareable as it "
                        "is; export takes a training checkpoint")
    if os.path.realpath(args.out) == os.path.realpath(args.checkpoint):  # no raise on a loop
        raise UserError(f"--out {args.out}: the checkpoint itself; an export keeps no optimiser "
                        "state, so the run could not resume: choose another file")
    dataset = None
    if args.calibrate is not None:  # its training split, as training calibrates from
        if not Path(args.calibrate).is_dir():
            raise UserError(f"--calibrate {args.calibrate}: no such folder (a dataset prepared by "
                            "`rawdiffusion prepare` from the camera's RAW files)")
        dataset = PreparedDataset(args.calibrate)
        if dataset.kind != "paired":
            raise UserError(f"--calibrate {args.calibrate}: a {dataset.kind!r} dataset, without "
                            "RAW; calibrating needs the camera's RAW files prepared by "
                            "`rawdiffusion prepare folder|fivek|nod`")
    size = export_checkpoint(args.checkpoint, args.out, dataset)
    camera = load_checkpoint(args.out)["camera"]
    wbs, exposures = (len(camera.get(key) or ()) for key in ("wbs", "exposures"))
    print(f"wrote {args.out} ({size / 2**20:.1f} MiB, {_noise_words(camera)}, "
          f"{wbs or 'no'} training white balance(s), {exposures or 'no'} training "
          "exposure(s))")
    return 0


def cmd_demo(args) -> int:
    from .demo import run_demo

    return run_demo(args.out, args.checkpoint, args.steps)


# ----------------------------------------------------------------------------- parser

def _common_prepare(p: argparse.ArgumentParser, out_help: str) -> None:
    p.add_argument("--out", required=True, type=_folder, help=out_help)
    p.add_argument("--workers", type=_positive_int, default=min(4, os.cpu_count() or 1),
                   help="worker processes (default: up to 4 cores)")
    _threads_option(p, "CPU threads of each worker process (default: the CPUs this process "
                       "may use, divided among the workers")
    p.add_argument("--keep-going", action="store_true",
                   help="exit 0 even when some input files were skipped")


def _split_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--test-fraction", type=_fraction, default=0.15,
                   help="fraction of images in the test split (default 0.15)")
    p.add_argument("--split-seed", type=_numpy_seed, default=2817,
                   help="random_state of the scikit-learn-identical split (default 2817)")
    p.add_argument("--grid", type=_positive_int, default=3,
                   help="patches per side cut from every image (default 3: a 3x3 grid)")


def _threads_option(p: argparse.ArgumentParser, what: str = "CPU threads for computing "
                    "(default: the CPUs this process may use") -> None:
    """--threads of the long commands (cpus.set_threads, called in main)."""
    p.add_argument("--threads", type=_positive_int, metavar="N",
                   help=f"{what}; at most $OMP_NUM_THREADS when that is set)")


class OneLineParser(argparse.ArgumentParser):
    """argparse's parser, whose errors are one line (argparse prints its usage first) as every
    other input error: 'rawdiffusion convert: error: argument --steps: ... (see rawdiffusion
    convert --help)', exit status 2. The subcommands' parsers are of this class too."""

    def error(self, message):
        hint = _dash_hint(getattr(self, "_given", []), self) if (
            message.startswith("the following arguments are required")) else ""
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help{hint})\n")

    def parse_known_args(self, args=None, namespace=None):
        self._given = list(sys.argv[1:] if args is None else args)
        namespace, extras = super().parse_known_args(args, namespace)
        if not hasattr(namespace, "_command_prog"):  # the innermost subcommand parses first
            namespace._command_prog = self.prog
        return namespace, extras

    def parse_args(self, args=None, namespace=None):
        """As argparse's, but unrecognized arguments are reported by the subcommand they were
        given to ('rawdiffusion info: error: ...'), which lists its options in its --help."""
        namespace, extras = self.parse_known_args(args, namespace)
        if extras:
            prog = namespace._command_prog
            self.exit(2, f"{prog}: error: unrecognized arguments: {' '.join(extras)} (see "
                         f"{prog} --help{_dash_hint(extras)})\n")
        return namespace


def _dash_hint(given: list[str], parser: argparse.ArgumentParser | None = None) -> str:
    """'; ... was read as an option: ...' when an argument that begins with '-' is no option
    (of `parser`, when given) and no number: a file name, most likely (`info -bad.dng`)."""
    known = parser._option_string_actions if parser is not None else {}
    names = [a for a in given if a.startswith("-") and not a.startswith("--") and a != "-"
             and a.split("=")[0] not in known and not _is_number(a)]
    if not names:
        return ""
    return (f"; {names[0]} was read as an option: a file whose name begins with '-' goes after "
            f"-- or as ./{names[0]}")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="rawdiffusion",
        description="RGB-to-RAW generation with RAW-Diffusion: read and write RAW files and "
                    "prepare datasets.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (_add_info, _add_prepare, _add_hydra_commands, _add_detect, _add_convert,
                _add_baseline, _add_pipeline, _add_export_and_demo):
        add(sub)
    return parser


def _add_info(sub) -> None:
    p = sub.add_parser("info", help="describe RAW files (one JSON object per file)")
    p.add_argument("files", nargs="+", metavar="FILE",
                   help="RAW files; a name that begins with '-' goes after -- (info -- -a.dng)")
    p.add_argument("--preview", metavar="DIR", type=_folder,
                   help="also write a viewable PNG of each mosaic (greens averaged, gamma 1/5)")
    _raw_max_pixels(p)
    p.set_defaults(func=cmd_info)


def _raw_max_pixels(p: argparse.ArgumentParser) -> None:
    p.add_argument("--max-pixels", type=_positive_int, metavar="N",
                   help="largest RAW image to read, in pixels (width x height as its header or "
                        f"sidecar declares them); default {RAW_MAX_PIXELS}")


def _add_prepare(sub) -> None:
    prep = sub.add_parser("prepare", help="turn RAW (or RGB) datasets into training folders")
    prep.set_defaults(func=cmd_prepare)  # subsample sets its own
    psub = prep.add_subparsers(dest="dataset", required=True, metavar="SOURCE")

    p = psub.add_parser("folder", help="a folder of one camera's RAW files")
    p.add_argument("--raw-dir", required=True, help="folder of RAW files")
    p.add_argument("--name", type=_dataset_name,
                   help="dataset name, which training runs are named after "
                   "(default: the name it has when --out was prepared before, else the name "
                   "of the --out folder)")
    _common_prepare(p, "output dataset folder")
    _split_options(p)
    _raw_max_pixels(p)

    p = psub.add_parser("fivek", help="MIT-Adobe FiveK DNGs of one camera (fivek_nikon, "
                                      "fivek_canon)")
    p.add_argument("--root", required=True, help="the FiveK folder (holding raw_photos/)")
    p.add_argument("--camera", required=True, choices=["nikon", "canon"])
    _common_prepare(p, "output dataset folder")
    _split_options(p)
    _raw_max_pixels(p)

    p = psub.add_parser("nod", help="NOD night object detection RAW images (nod_nikon, "
                                    "nod_sony, and their h416 variants)")
    p.add_argument("--root", required=True, help="the NOD folder")
    p.add_argument("--camera", required=True, choices=["nikon", "sony"])
    p.add_argument("--h416", action="store_true",
                   help="whole images resized to 416x640 with COCO boxes, instead of patches")
    p.add_argument("--grid", type=_positive_int, default=3, help="patches per side (default 3)")
    _common_prepare(p, "output dataset folder")
    _raw_max_pixels(p)

    for name, helptext in (
            ("cityscapes", "Cityscapes RGB images (416x832) with boxes (cityscapes_h416)"),
            ("bdd", "BDD100K RGB images (416x736) with boxes (bdd_h416)")):
        p = psub.add_parser(name, help=helptext)
        p.add_argument("--root", required=True, help=f"the {name} folder")
        p.add_argument("--splits", nargs="+", default=["train", "val"],
                       help="splits to prepare (default: train val)")
        _common_prepare(p, "output dataset folder")

    p = psub.add_parser("subsample", help="a few training images of a prepared dataset "
                                          "(the *_subsample datasets)")
    p.add_argument("dataset", help="a prepared dataset folder")
    p.add_argument("--out", required=True, type=_folder, help="output dataset folder")
    p.add_argument("--max-items", type=int, required=True,
                   help="training images to keep (all samples of each)")
    p.add_argument("--seed", type=_non_negative_int, default=0,
                   help="seed of the image permutation (default 0)")
    p.set_defaults(func=cmd_prepare_subsample)


# The Hydra commands: everything after `train`, `sample`, `detect train` and `detect eval` goes
# to Hydra as is (overrides, -m, --cfg, --help), see main(); hence add_help=False.
HYDRA_COMMANDS = {
    "train": "train a model: Hydra overrides, e.g. dataset=fivek_nikon general.seed=0 (as "
             "train.py; rerun to resume)",
    "sample": "evaluate or generate with a trained run: Hydra overrides, e.g. "
              "dataset=fivek_nikon general.seed=0 (as sample.py)",
}
DETECT_COMMANDS = {
    "train": "train a detector: Hydra overrides, e.g. data=nod_nikon data/generated=bdd "
             "data.generated.pred=DIR data.real_fraction=0.05 (rerun to resume)",
    "eval": "COCO box AP of a trained detector on data.val: the training overrides, or "
            "checkpoint=PATH",
}


def _add_hydra_commands(sub) -> None:
    for name, helptext in HYDRA_COMMANDS.items():
        p = sub.add_parser(name, add_help=False, help=helptext)
        p.set_defaults(func=cmd_hydra, hydra_command=name)


def _add_detect(sub) -> None:
    p = sub.add_parser("detect", help="RAW object detection (Faster R-CNN): detect train ... "
                                      "or detect eval ..., with Hydra overrides")
    commands = p.add_subparsers(dest="detect_command", required=True, metavar="train|eval")
    for name, helptext in DETECT_COMMANDS.items():
        c = commands.add_parser(name, add_help=False, help=helptext)
        c.set_defaults(func=cmd_hydra, hydra_command=f"detect {name}")


# What the generator's arguments (settings.Settings, errors.SettingError.name) are called on
# the command line.
GENERATOR_OPTIONS = {"steps": "--steps", "sampler": "--sampler", "tile": "--tile",
                     "overlap": "--overlap", "batch_size": "--batch-size", "seed": "--seed",
                     "dtype": "--bf16", "iso": "--iso", "exposure": "--exposure",
                     "white_balance": "--white-balance"}


def _add_convert(sub) -> None:
    p = sub.add_parser("convert", help="convert photos (JPEG, PNG, TIFF) into a checkpoint's "
                                       "camera RAW, with previews")
    p.add_argument("inputs", nargs="+", metavar="IMAGE_OR_DIR")
    p.add_argument("--checkpoint",
                   help="a trained checkpoint (.pt) or a baseline file (rawdiffusion baseline "
                        "fit); default: the checkpoint shipped in the package (GoPro)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--steps", type=_integer, default=DEFAULTS.steps,
                   help=f"sampling steps, 1 to 1000 (default {DEFAULTS.steps}; see "
                        "docs/quality.md, 'Steps and samplers')")
    p.add_argument("--sampler", default=DEFAULTS.sampler, metavar="{" + ",".join(SAMPLERS) + "}",
                   help=f"DDIM, DPM-Solver++ 2M or UniPC (default {DEFAULTS.sampler})")
    p.add_argument("--batch-size", type=_integer, default=DEFAULTS.batch_size,
                   help=f"tiles per forward pass, from one photo or several (default "
                        f"{DEFAULTS.batch_size}); the outputs do not depend on it, up to 1 in "
                        "65535")
    p.add_argument("--workers", type=_non_negative_int, default=DEFAULT_READERS,
                   help=f"processes reading and decoding photos ahead (default "
                        f"{DEFAULT_READERS}; 0: the main process)")
    p.add_argument("--max-pixels", type=_positive_int, metavar="N",
                   help="largest photo to read, in pixels (width x height); default "
                        "Pillow's limit, 89478485")
    p.add_argument("--format", choices=["dng", "hdf5", "npy"], default="dng",
                   help="RAW output: DNG (default), or the reference's HDF5 / .npy layout")
    p.add_argument("--seed", type=_integer, default=DEFAULTS.seed,
                   help=f"noise seed (default {DEFAULTS.seed})")
    p.add_argument("--tile", type=_integer, default=DEFAULTS.tile,
                   help=f"tile side in packed pixels for large images (default {DEFAULTS.tile})")
    p.add_argument("--overlap", type=_integer, default=DEFAULTS.overlap,
                   help=f"tile overlap (default {DEFAULTS.overlap})")
    p.add_argument("--iso", type=_number_or_draw, metavar="{N,draw}",
                   help="add the camera's sensor noise at ISO N (its noise model, calibrated "
                        "from the training RAW; written as the DNG's ISO and NoiseProfile), or "
                        "at an ISO drawn per photo from the training images' (seeded); default: "
                        "none, the clean mean")
    p.add_argument("--exposure", type=_number_or_draw, default=DEFAULTS.exposure,
                   metavar="{EV,draw}",
                   help="scale the clean signal by 2^EV before the noise, clipped at white as "
                        "the sensor clips (negative: low light), or draw: one per photo from "
                        "the training images' exposures against the colour prior (seeded); "
                        "default 0, their typical exposure")
    p.add_argument("--white-balance", type=_white_balance, metavar="R,G,B|draw",
                   help="the scene's as-shot white-balance multipliers for this camera (green 1, "
                        "as LibRaw's camera_whitebalance), or draw: one per photo from the "
                        "training images' (seeded); the RAW is relit to that illuminant before "
                        "--exposure and the noise, and the DNG's AsShotNeutral is 1/R,1,1/B; "
                        "default: the camera's own, that of its training scenes")
    p.add_argument("--pipeline", metavar="FILE",
                   help="undo a photo pipeline from each photo before generating: a file made "
                        "by `rawdiffusion pipeline fit` from RAW + photo pairs of the pipeline "
                        "the photos come from (default: none, the photos are taken as LibRaw's "
                        "default rendering)")
    p.add_argument("--figure", action="store_true",
                   help="also write NAME_compare.png, labelled: photo | the DNG as LibRaw renders "
                        "it (auto-brightness off) | RAW preview")
    p.add_argument("--bf16", action="store_true",
                   help="bf16 autocast of the network (off by default: not measured to pay "
                        "yet, see docs/benchmarks.md)")
    p.add_argument("--cpu", action="store_true", help="run on the CPU even if a GPU is there")
    _threads_option(p)
    p.set_defaults(func=cmd_convert, options=GENERATOR_OPTIONS)


def _add_baseline(sub) -> None:
    base = sub.add_parser("baseline", help="RGB -> RAW without a network: fitted colour maps "
                                           "and unprocessing, usable wherever a checkpoint is")
    bsub = base.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = bsub.add_parser(
        "fit", help="fit a baseline on a prepared dataset's training split and save it",
        description="Fit a baseline for the camera of a prepared dataset's split and write it "
                    "as a small JSON file that `convert --checkpoint` and `sample.py "
                    "checkpoint=` take in a checkpoint's place. Maps (linear, poly2, poly3, "
                    "curves, and sums such as curves+poly3+local, local being a 3x3 "
                    "neighbourhood filter) are fitted by least squares on every pixel of the "
                    "split, clipped "
                    "guide pixels included, outputs clipped to [0, 1]; upi is unprocessing "
                    "(Brooks et al. 2019) with generic parameters, upi-camera with the camera's "
                    "colour matrix and as-shot white balance. See rawdiffusion/prior.py and "
                    "baselines.py.")
    p.add_argument("dataset", help="a prepared paired dataset folder")
    p.add_argument("--kind", required=True,
                   help="linear, poly2, poly3, curves, a sum of groups joined by + (one of "
                        "linear/poly2/poly3, curves, local; e.g. curves+poly3+local), upi or "
                        "upi-camera")
    p.add_argument("--out", required=True, help="the baseline file to write (.json)")
    p.add_argument("--split", default="train", help="split to fit on (default train)")
    _threads_option(p)
    p.set_defaults(func=cmd_baseline_fit)


def _add_pipeline(sub) -> None:
    base = sub.add_parser("pipeline", help="a photo pipeline, calibrated from RAW + photo pairs, "
                                           "for convert --pipeline to undo")
    psub = base.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = psub.add_parser(
        "fit", help="fit the transform that takes a pipeline's photos back to the canonical "
                    "rendering of their RAW",
        description="The generators learnt from LibRaw's default rendering of each RAW file. "
                    "Give RAW files with the photos another pipeline (a camera's JPEG engine, "
                    "a raw developer, an edit) made of them: one global transform (a tone "
                    "curve per channel, a 3x3 matrix and gains in linear RGB) is fitted to "
                    "take those photos back to the RAW files' canonical renderings, and "
                    "written as a small JSON file for `convert --pipeline`. It undoes what the "
                    "pipeline does alike to every photo; what depends on the scene (automatic "
                    "white balance) stays. See rawdiffusion/pipeline.py.")
    p.add_argument("--pair", nargs=2, action="append", required=True, metavar=("RAW", "PHOTO"),
                   help="a RAW file and the pipeline's photo of it (JPEG, PNG, TIFF), the same "
                        "picture up to a turn and a few border pixels; repeatable, different "
                        "scenes help")
    p.add_argument("--out", required=True, help="the pipeline file to write (.json)")
    p.set_defaults(func=cmd_pipeline_fit)


def _add_export_and_demo(sub) -> None:
    p = sub.add_parser("export", help="a checkpoint for sharing: weights only (EMA when kept), "
                                      "float16, no optimiser state")
    p.add_argument("checkpoint")
    p.add_argument("--out", required=True)
    p.add_argument("--calibrate", metavar="DATASET",
                   help="store what training calibrates from this prepared dataset's training "
                        "images (the camera's noise model, from those of its make and model, "
                        "for --iso; the white balances of all of them, the lighting the model "
                        "was trained on, for --white-balance draw; their exposures against "
                        "the colour prior, for --exposure draw), for a checkpoint made "
                        "before; the weights are written as they are")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("demo", help="the main job: convert photos that scikit-image ships "
                                    "with the shipped checkpoint")
    p.add_argument("--out", default="demo_out", help="output folder (default demo_out)")
    p.add_argument("--checkpoint", help="another checkpoint than the shipped one")
    p.add_argument("--steps", type=_integer, default=DEFAULTS.steps,
                   help=f"DDIM steps (default {DEFAULTS.steps})")
    p.set_defaults(func=cmd_demo, options=GENERATOR_OPTIONS)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    overrides = []
    # After `train`, `sample`, `detect train` and `detect eval`, the rest is Hydra's:
    # overrides, -m, --cfg.
    commands = [a for a in argv if not a.startswith("-")][:2]
    hydra_command = None
    if commands[:1] and commands[0] in HYDRA_COMMANDS:
        hydra_command = commands[0]
    elif commands[:1] == ["detect"] and commands[1:] and commands[1] in DETECT_COMMANDS:
        hydra_command = commands[1]
    if hydra_command:
        at = argv.index(hydra_command) + 1
        argv, overrides = argv[:at], argv[at:]
    args = build_parser().parse_args(argv)
    args.overrides = overrides
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    if "threads" in args:  # convert, prepare and baseline fit: --threads (a number >= 1)
        # prepare's worker processes compute side by side: each gets its share of the CPUs
        set_threads(args.threads, "--threads", args.workers if args.command == "prepare" else None)
    return run_reported(_run, args)


def _run(args) -> int:
    """The subcommand; a generator argument that cannot work (errors.SettingError) is said as
    argparse says a bad option, naming the subcommand's option, status 2."""
    try:
        return args.func(args)
    except SettingError as e:
        option = getattr(args, "options", {}).get(e.name)
        if option is None:
            raise
        got = "" if e.value is SettingError.NOT_SHOWN else f", got {e.value}"
        prog = args._command_prog
        print(f"{prog}: error: argument {option}: {e.reason}{got} (see {prog} --help)",
              file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    sys.exit(main())
