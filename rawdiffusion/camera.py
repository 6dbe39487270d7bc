"""The camera a generator writes RAW as: one typed record.

A checkpoint and a baseline file carry the camera of the data they were made from (its Bayer
order, levels, as-shot white balance, colour calibrations, make and model), so that generated
RAW is written as that camera's DNG without the dataset. `Camera` is that record, validated
when it is made (a declared pydantic schema, as sidecar.Sidecar, so that a bad value is
reported with its key), and therefore always writable as a DNG. Files store it as the plain
dict of `to_dict`, the same keys and values as before the record existed, so that files of
every version load; keys it does not know (a later version's) are kept as they are.
"""

from __future__ import annotations

from collections import Counter
from typing import Annotated, Literal

import numpy as np
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, \
    field_validator, model_validator
from pydantic_core import PydanticCustomError

from . import bayer
from .bayer import CFA_ORDERS, level_problem
from .errors import UserError
from .io import RawImage
from .noise import NoiseModel, calibrate_entries, dng_noise_profile
from .schemas import Gain, schema_problem, three_gains
from .settings import exposure_problem, white_balance_problem

Finite = Annotated[float, Field(allow_inf_nan=False)]
Row = tuple[Finite, Finite, Finite]
Matrix = tuple[Row, Row, Row]  # XYZ -> camera (DNG ColorMatrix1/2)


class CameraError(UserError, ValueError):
    """A camera description that cannot be used: 'camera.<key>: what is wrong'."""


class Camera(BaseModel):
    """The camera of generated RAW.

    cfa: the Bayer order (bayer.CFA_ORDERS). black_level: (4,) per packed channel R, G1, G2,
    B; white_level: the saturation level; 0 <= black < white <= 65535 (bayer.level_problem).
    wb: as-shot gains (R, G, B), or None. wbs: the as-shot gains (R, G, B) of each training
    image (`from_training_images`; their mean is wb), from which `--white-balance draw` draws
    a scene's illuminant, or None (files made before they were kept have no "wbs" key; R/G
    and B/G of each within settings.WB_RATIO). exposures: each training image's exposure against
    the colour prior's estimate, in EV within +-settings.MAX_EV (prior.exposure_offsets), from
    which `--exposure draw` draws, or None (files made before they were kept, or without a
    prior, have no "exposures" key). color_matrix / illuminant and color_matrix2 /
    illuminant2: the DNG colour calibrations (XYZ -> camera, EXIF LightSource code; 0 or None:
    unknown), or None. make, model: as the RAW files named them. noise: the sensor's noise model
    (noise.NoiseModel, calibrated from the training images: `from_training_images`), or None
    (files made before noise calibration, or from RAW without an ISO, have none; their dicts
    have no "noise" key). Frozen: a camera does not change once made. Raises pydantic's
    ValidationError when made directly with a bad value; `from_dict` says it in one line
    (CameraError).
    """

    model_config = ConfigDict(extra="allow", frozen=True)
    cfa: Literal[CFA_ORDERS]
    make: str = ""
    model: str = ""
    black_level: tuple[Finite, Finite, Finite, Finite]
    white_level: float
    wb: Annotated[tuple[Gain, Gain, Gain] | None, BeforeValidator(three_gains)] = None
    wbs: Annotated[tuple[tuple[Gain, Gain, Gain], ...], Field(min_length=1)] | None = None
    exposures: tuple[float, ...] | None = None
    color_matrix: Matrix | None = None
    illuminant: int | None = None
    color_matrix2: Matrix | None = None
    illuminant2: int | None = None
    noise: NoiseModel | None = None

    @field_validator("wbs")
    @classmethod
    def _wbs_possible(cls, wbs):
        for i, gains in enumerate(wbs or ()):
            problem = white_balance_problem(gains)
            if problem:
                raise PydanticCustomError("custom", f"entry {i}: {problem}")
        return wbs

    @field_validator("exposures", mode="before")
    @classmethod
    def _exposures_possible(cls, exposures):
        if exposures is None:
            return None
        if not isinstance(exposures, (list, tuple)) or not exposures:
            raise PydanticCustomError("custom", "a list of one or more exposures in EV")
        for i, ev in enumerate(exposures):
            problem = exposure_problem(ev)
            if problem:
                raise PydanticCustomError("custom", f"entry {i}: {problem}")
        return tuple(float(ev) for ev in exposures)

    @model_validator(mode="after")
    def _levels_possible(self) -> Camera:
        problem = level_problem(self.black_level, self.white_level,
                                ("black_level", "white_level"))
        if problem:
            raise PydanticCustomError("custom", problem)
        return self

    @classmethod
    def from_dict(cls, stored: dict) -> Camera:
        """The camera a checkpoint or baseline file stores (`to_dict`'s dict). CameraError,
        one line naming the key, for a value that cannot be."""
        problem = cls.problem(stored)
        if problem:
            raise CameraError(problem)
        return cls.model_validate(stored)

    @staticmethod
    def problem(stored: dict) -> str | None:
        """What is wrong with a stored camera dict, in one line ('camera.wb[1]: ...',
        'camera: impossible levels: ...'), or None."""
        try:
            Camera.model_validate(stored)
        except ValidationError as e:
            return schema_problem(e, prefix="camera.")
        return None

    def to_dict(self) -> dict:
        """The plain dict files store: the keys it was made with (every field for
        `from_images`), lists for tuples, plus any unknown keys it was read with."""
        return self.model_dump(mode="json", exclude_unset=True)

    @classmethod
    def from_images(cls, images: dict) -> Camera:
        """The camera of a prepared dataset's image entries (dataset.json "images"): its most
        common Bayer order, make and model, the median levels, the mean white balance and the
        colour calibrations of the first image that has one: color_matrix / illuminant (DNG
        ColorMatrix1, CalibrationIlluminant1) and color_matrix2 / illuminant2 (or None).
        Entries of datasets prepared before illuminants were kept have an illuminant of 0
        (unknown)."""
        entries = list(images.values())
        common = lambda key: Counter(  # noqa: E731
            str(e.get(key, "")) for e in entries).most_common(1)[0][0]
        wbs = [e["wb"] for e in entries if e.get("wb")]
        calibrated = next((e for e in entries if e.get("color_matrix")), {})
        second = calibrated.get("color_matrix2")
        illuminant = lambda key: int(calibrated.get(key) or 0)  # noqa: E731  (0: unknown)
        return cls(
            cfa=common("cfa"),
            make=common("make"),
            model=common("model"),
            black_level=np.median([e["black_level"] for e in entries], axis=0).tolist(),
            white_level=float(np.median([e["white_level"] for e in entries])),
            wb=np.mean(wbs, axis=0).tolist() if wbs else None,
            color_matrix=calibrated.get("color_matrix"),
            illuminant=illuminant("illuminant") if calibrated else None,
            color_matrix2=second,
            illuminant2=illuminant("illuminant2") if second else None,
        )

    @classmethod
    def from_training_images(cls, images: dict) -> Camera:
        """`from_images` with its noise model (`with_noise_of`) and the as-shot white balance
        of each image that has one, `wbs` (those whose mean is `wb`): what training and
        `baseline fit` store."""
        return cls.from_images(images).calibrated_on(images)

    def calibrated_on(self, images: dict) -> Camera:
        """This camera with what training calibrates from its training images, the dataset
        entries `images`: the noise model (`with_noise_of`) and `wbs`, the as-shot white
        balance of each image that has one (kept as they were when none has)."""
        camera = self.with_noise_of(images)
        wbs = [list(e["wb"]) for e in images.values() if e.get("wb")]
        return Camera.model_validate({**camera.to_dict(), "wbs": wbs}) if wbs else camera

    def with_noise_of(self, images: dict) -> Camera:
        """This camera with the noise model calibrated from the dataset entries `images`
        (dataset.json "images") of its make and model (noise.calibrate_entries: the ISO and
        noise that `prepare` measured on each), or with none, and a warning that says why, when
        none of them has both."""
        mine = [e for e in images.values()
                if (str(e.get("make", "")), str(e.get("model", ""))) == (self.make, self.model)]
        return self.with_noise(calibrate_entries(mine, self.name or "the camera"))

    def with_noise(self, noise: NoiseModel | None) -> Camera:
        """This camera with the noise model `noise` (None: without one)."""
        stored = {k: v for k, v in self.to_dict().items() if k != "noise"}
        return Camera.model_validate(stored if noise is None else
                                     {**stored, "noise": noise.to_dict()})

    def with_exposures(self, exposures) -> Camera:
        """This camera with its training images' exposures (EV, a sequence of floats:
        prior.exposure_offsets' values); as it is for none (an empty sequence or None)."""
        if not exposures:
            return self
        return Camera.model_validate({**self.to_dict(), "exposures": list(exposures)})

    @property
    def name(self) -> str:
        """Make and model, as a person names the camera."""
        return " ".join(s for s in (self.make, self.model) if s)

    def raw(self, x: np.ndarray, iso: float | None = None,
            wb: tuple[float, float, float] | None = None) -> RawImage:
        """Packed RAW x (4, h, w) (R, G1, G2, B) -> a RawImage of this camera, mosaic (2h, 2w)
        uint16: x * (white - black_c) + black_c, rounded and clipped to [0, white]
        (bayer.denormalise): x in [0, 1], or below 0 for the codes under black of an image with
        sensor noise (sensor.add_noise).

        iso: the ISO x was recorded at with this camera's noise model (None: a clean image):
        the image carries it, and the model's (S, O) at it as its NoiseProfile (R, G, B; G the
        mean of G1 and G2: noise.dng_noise_profile). ValueError for an iso without a model.
        wb: the scene's as-shot white balance (R, G, B) x was relit to (sensor.py), the image's
        `wb` (written as AsShotNeutral 1 / wb); None: the camera's own, `wb`.

        The colour calibrations go to the image as they are, with their illuminants; a camera
        stored before illuminants were kept has one "color_matrix" and no "illuminant": its
        illuminant is unknown (EXIF LightSource 0), never assumed to be D65."""
        if iso is not None and self.noise is None:
            raise ValueError(f"ISO {iso:g} given, but the camera {self.name!r} has no noise model")
        black = np.asarray(self.black_level, dtype=np.float64)  # per packed channel
        mosaic = bayer.unpack(bayer.denormalise(x, black, self.white_level), self.cfa)
        # RawImage keeps black levels per tile position: invert packed_levels' reordering.
        tile = np.zeros(4)
        for level, (dy, dx) in zip(black, bayer.channel_positions(self.cfa)):
            tile[2 * dy + dx] = level
        matrix, matrix2 = self.color_matrix, self.color_matrix2
        return RawImage(mosaic=mosaic, cfa=self.cfa, black_level=tuple(tile),
                        white_level=self.white_level, wb=self.wb if wb is None else tuple(wb),
                        color_matrix=None if matrix is None else np.asarray(matrix),
                        illuminant=self.illuminant or 0,
                        color_matrix2=None if matrix is None or matrix2 is None
                        else np.asarray(matrix2),
                        illuminant2=self.illuminant2 or 0, make=self.make, model=self.model,
                        iso=iso, noise_profile=None if iso is None else
                        dng_noise_profile(*self.noise.at(iso)))
