"""rawdiffusion: RAW-Diffusion (Reinders et al., WACV 2025), an sRGB photo turned into the RAW
(Bayer) image a specific camera would have recorded.

    import rawdiffusion as rd
    gen = rd.load()           # the shipped model; or rd.load("run/checkpoint.pt" | "map.json")
    raw = gen(photo)          # HxWx3 uint8 array, PIL image or path -> rd.RawImage, HxW Bayer
    raw.write_dng("out.dng")

rd.load: loading.load; the generator: generator.Generator; rd.RawImage: io.RawImage.
"""

import importlib

# The names above, imported on first use by the module __getattr__ below (PEP 562): importing
# rawdiffusion itself stays cheap (no torch), so that the `rawdiffusion` command starts quickly.
_EXPORTS = {"load": "loading", "Generator": "generator", "RawImage": "io", "Camera": "camera",
            "Settings": "settings", "DEFAULTS": "settings", "UserError": "errors",
            "SettingError": "errors"}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'rawdiffusion' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
