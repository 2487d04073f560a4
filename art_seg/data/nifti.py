"""Safe NIfTI reading (validated, float32, gzip CRC checked) and atomic NIfTI writing, through nibabel.

Axis order: volumes keep the voxel order in which NIfTI stores them, ``(i, j, k)`` (for BraTS roughly
left-right, posterior-anterior, inferior-superior), and ``art_seg`` calls these axes ``(D, H, W)``. No
reorientation is done, so the source affine maps ``(D, H, W)`` voxel indices to scanner millimetres.

nibabel reads ``.nii.gz`` files through Python's ``gzip`` module but, for speed, never reads the stream to its
end, so a file whose compressed bytes were damaged can load without complaint and give wrong voxels. Here every
``.nii.gz`` is first streamed to its end with ``gzip`` (which checks the CRC-32 and length in the gzip trailer).

nibabel also reads only as many voxel bytes as the header declares: a header whose ``dim`` says 4 slices over 8
slices of data loads half the volume without a word, and a header declaring 2000^3 voxels over a 4 KB file makes
it allocate the declared size before it finds the data missing. Here the data size is checked against the header
before any voxel is read: exactly, from the file size (``.nii``) or the decompressed size (``.nii.gz``).
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.fileslice import fileslice
from nibabel.openers import Opener

from art_seg._checks import check_number, check_type
from art_seg._files import atomic_write_bytes

__all__ = [
    "NiftiValidationError",
    "check_gzip_integrity",
    "open_nifti",
    "out_of_memory_error",
    "read_volume_into",
    "read_volumes_into",
    "load_nifti",
    "save_nifti",
]

_CHUNK = 1 << 20
#: Largest file :func:`open_nifti` accepts, in voxels over all its axes (a 4-D file's volumes together):
#: 2**28 = 268,435,456 (e.g. 512 x 512 x 1024; 1 GiB as float32). BraTS scans have 240 x 240 x 155 = 8.9 million,
#: a Decathlon BrainTumour case 4 x 8.9 million. A header declaring more is refused before any voxel is read;
#: raise it here for larger scans.
MAX_VOXELS = 2**28
#: Deflate expands at most 1032-fold (a 258-byte match coded in 2 bits), so n gzip bytes hold at most 1032 n.
_DEFLATE_MAX_RATIO = 1032


class NiftiValidationError(ValueError):
    """A NIfTI file is missing, empty, truncated, corrupt or of the wrong shape. ``path`` names the file."""

    def __init__(self, path: str | os.PathLike, problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


def out_of_memory_error(
    path: str | os.PathLike, shape: tuple[int, ...], dtype: np.dtype | type
) -> NiftiValidationError:
    """The error to raise for a ``MemoryError`` while reading ``path`` into a ``shape`` array of ``dtype``."""
    dtype = np.dtype(dtype)
    size = int(np.prod(shape)) * dtype.itemsize
    return NiftiValidationError(
        path, f"out of memory reading shape {tuple(shape)} as {dtype.name} ({size / 2**20:.1f} MiB)"
    )


def _is_gzip(path: Path) -> bool:
    return path.name.lower().endswith(".gz")


def _gzip_data_size(path: Path) -> int:
    """The decompressed size of a ``.gz`` file (all members), streamed: CRC-32 and lengths checked, O(1 MiB)."""
    size = 0
    try:
        with gzip.open(path, "rb") as stream:
            while chunk := stream.read(_CHUNK):
                size += len(chunk)
    except EOFError as err:
        raise NiftiValidationError(path, f"truncated gzip stream ({err})") from err
    except gzip.BadGzipFile as err:
        raise NiftiValidationError(path, f"corrupt gzip data, CRC or length check failed ({err})") from err
    except zlib.error as err:
        raise NiftiValidationError(path, f"corrupt gzip data, cannot decompress ({err})") from err
    return size


def _gzip_trailer_size(path: Path) -> int:
    """ISIZE, the last 4 bytes of a gzip file: the size of its last member's data modulo 2**32."""
    with open(path, "rb") as stream:
        stream.seek(-4, os.SEEK_END)
        return int.from_bytes(stream.read(4), "little")


def check_gzip_integrity(path: str | os.PathLike) -> None:
    """Stream a ``.gz`` file to its end so that ``gzip`` checks its CRC-32 and length; memory stays O(1 MiB).

    Args:
        path: a gzip-compressed file, e.g. ``*.nii.gz``.

    Raises:
        NiftiValidationError: if the file is truncated, not gzip, or its data fail the CRC check.

    Example:
        >>> check_gzip_integrity("BraTS20_Training_001_flair.nii.gz")  # doctest: +SKIP
    """
    _gzip_data_size(Path(path))


def _stored_spacing(path: Path, img: nib.Nifti1Image) -> tuple[float, ...]:
    """``pixdim[1:4]`` as stored: nibabel's loader turns a 0 into 1 and a negative into its absolute value."""
    with Opener(path) as stream:
        header = type(img.header).from_fileobj(stream, check=False)
    return tuple(float(z) for z in header["pixdim"][1:4])


def _check_data_size(path: Path, img: nib.Nifti1Image, check_crc: bool) -> None:
    """Check that the file holds exactly the voxel bytes its header declares, before any voxel is read.

    ``.nii``: the file size. ``.nii.gz``: first a bound from the file size alone (deflate expands at most
    ``_DEFLATE_MAX_RATIO``-fold, whatever the number of gzip members), then the decompressed size, streamed (with
    ``check_crc``, in the same pass as the CRC check) or, without ``check_crc``, taken from the gzip trailer when
    it matches (exact for a single-member file under 4 GiB; otherwise the stream is counted). Neither holds more
    than 1 MiB of data in memory.
    """
    size = path.stat().st_size
    offset = int(getattr(img.dataobj, "offset", img.header.get_data_offset()))
    dtype = img.get_data_dtype()
    declared = int(np.prod(img.shape)) * dtype.itemsize
    needed = offset + declared
    described = f"shape {tuple(int(s) for s in img.shape)} {dtype.name}"
    have, unit = size, ""
    if _is_gzip(path):
        if needed > _DEFLATE_MAX_RATIO * size:
            raise NiftiValidationError(
                path,
                f"the header declares {described} ({needed} bytes), more than a {size}-byte gzip file can hold "
                f"(at most {_DEFLATE_MAX_RATIO * size}): a damaged or crafted header",
            )
        trusted = not check_crc and needed < 2**32 and _gzip_trailer_size(path) == needed
        have, unit = (needed if trusted else _gzip_data_size(path)), " decompressed"
    if have < needed:
        raise NiftiValidationError(path, f"truncated: {have} bytes{unit}, the header needs {needed} for {described}")
    if have > needed:
        raise NiftiValidationError(
            path,
            f"data block larger than the header declares: {described} is {declared} bytes of voxels, but the file "
            f"holds {have - offset}{unit}",
        )


def open_nifti(path: str | os.PathLike, *, check_crc: bool = True, volumes: int | None = None) -> nib.Nifti1Image:
    """Open a NIfTI file lazily after checking it: exists, not empty, gzip intact, a 3D volume (or a 4-D file of
    ``volumes`` volumes), a usable spacing.

    Only the header is read (plus one streaming pass over a ``.gz`` file for the CRC check and its decompressed
    size); voxels are read later with :func:`read_volume_into` or :func:`load_nifti`. The file must hold exactly
    the voxel bytes its header declares (see the module docstring), so a lying header fails here, before memory
    is allocated for the voxels.

    Args:
        path: ``*.nii`` or ``*.nii.gz`` file.
        check_crc: stream ``.gz`` files to their end to check the gzip CRC (recommended; costs one
            decompression).
        volumes: ``None`` for a 3D volume; ``n`` for a 4-D file ``(x, y, z, n)`` holding ``n`` volumes on its 4th
            axis (the Decathlon's one file per case, channels on that axis); ``1`` accepts a 3D file too.

    Returns:
        The nibabel image (NIfTI-1 or NIfTI-2), data not yet loaded. Trailing singleton axes such as
        ``(240, 240, 155, 1)`` are accepted; its spatial shape is ``img.shape[:3]``.

    Raises:
        NiftiValidationError: with the path and the problem (missing, empty, truncated, corrupt, not NIfTI,
            not 3D, or not 4-D with ``volumes`` volumes, more than :data:`MAX_VOXELS` voxels, non-finite affine,
            voxel spacing not finite and positive, data size other than the header declares).
        ValueError: ``volumes`` is not a positive integer.
    """
    check_type("path", path, (str, os.PathLike))
    if volumes is not None:
        check_number("volumes", volumes, low=1, integer=True)
    path = Path(path)
    if not path.is_file():
        raise NiftiValidationError(path, "file not found")
    if path.stat().st_size == 0:
        raise NiftiValidationError(path, "empty file (0 bytes)")
    try:
        img = nib.load(path)  # the header only
    except Exception as err:  # nibabel raises many types (ImageFileError, EOFError, HeaderDataError, ...)
        if _is_gzip(path) and check_crc:
            check_gzip_integrity(path)  # a damaged stream is the more useful message
        raise NiftiValidationError(path, f"cannot read as NIfTI ({type(err).__name__}: {err})") from err
    if not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)):
        raise NiftiValidationError(path, f"not a NIfTI image (nibabel read it as {type(img).__name__})")
    shape = tuple(int(s) for s in img.shape)
    if volumes is None or volumes == 1:
        if len(shape) < 3 or any(s != 1 for s in shape[3:]):
            what = "a 3D volume" if volumes is None else "a 3D volume or a 4-D file of 1 volume"
            raise NiftiValidationError(path, f"expected {what}, got shape {shape}")
    elif len(shape) < 4 or shape[3] != volumes or any(s != 1 for s in shape[4:]):
        raise NiftiValidationError(
            path, f"expected a 4-D image of {volumes} volumes (x, y, z, {volumes}), one per channel, got shape {shape}"
        )
    if min(shape[:3]) < 1:
        raise NiftiValidationError(path, f"volume has an empty axis, shape {shape}")
    voxels = int(np.prod(shape))
    if voxels > MAX_VOXELS:
        raise NiftiValidationError(
            path, f"shape {shape} has {voxels} voxels, more than art_seg.data.nifti.MAX_VOXELS = {MAX_VOXELS}"
        )
    if not np.all(np.isfinite(img.affine)):
        raise NiftiValidationError(path, f"affine holds NaN or Inf:\n{img.affine}")
    spacing = _stored_spacing(path, img)
    if not all(np.isfinite(z) and z > 0 for z in spacing):
        raise NiftiValidationError(path, f"voxel spacing (pixdim[1:4]) must be finite and > 0, got {spacing}")
    _check_data_size(path, img, check_crc)
    return img


def read_volume_into(img: nib.Nifti1Image, out: np.ndarray, path: str | os.PathLike) -> np.ndarray:
    """Read the voxels of an opened 3D image into ``out`` (float32), applying the header scaling in float32.

    The file's raw array (its own dtype, e.g. int16) is the only temporary: no float64 copy is made, and
    nibabel's cache is not filled.

    Args:
        img: image from :func:`open_nifti`.
        out: float32 array of shape ``img.shape[:3]`` to fill (e.g. one channel of a ``(4, D, H, W)`` array).
        path: the file, for error messages.

    Returns:
        ``out``.

    Raises:
        NiftiValidationError: if the voxels cannot be read (out of memory included) or are not finite.
    """
    if out.shape != tuple(img.shape[:3]):
        raise ValueError(f"out must have shape {tuple(img.shape[:3])}, got {out.shape}")
    read_volumes_into(img, [out], path)
    return out


def _raw_volumes(img: nib.Nifti1Image, shape: tuple[int, ...], volumes: list[int]):
    """Yield ``(v, raw volume v)`` in the file's dtype, for each distinct ``v`` in file order, one at a time.

    A 3D file is read whole (``get_unscaled``). A 4-D file is sliced volume by volume through one open stream in
    increasing order, so a ``.gz`` file is decompressed once from start to the last volume needed and only one
    volume's raw array is held at a time.
    """
    proxy = img.dataobj
    if not nib.is_proxy(proxy):
        data = np.asanyarray(proxy).reshape(shape, order="F")
        for v in sorted(set(volumes)):
            yield v, data[..., v]
        return
    if shape[3] == 1:
        yield 0, np.asanyarray(proxy.get_unscaled()).reshape(shape[:3], order="F")
        return
    with Opener(proxy.file_like) as stream:
        for v in sorted(set(volumes)):
            sliced = (slice(None),) * 3 + (v,)
            yield v, fileslice(stream, sliced, shape, proxy.dtype, proxy.offset, order=proxy.order)


def read_volumes_into(
    img: nib.Nifti1Image, outs: list[np.ndarray], path: str | os.PathLike, volumes: list[int] | None = None
) -> None:
    """Read volumes of an opened image into float32 arrays, each volume read once, header scaling in float32.

    The one temporary is one volume's raw array in the file's dtype (e.g. int16): no float64 copy is made, and
    nibabel's cache is not filled.

    Args:
        img: image from :func:`open_nifti` (3D, or 4-D ``(x, y, z, n)``).
        outs: float32 arrays of shape ``img.shape[:3]`` to fill.
        path: the file, for error messages.
        volumes: for a 4-D image, the volume (index on the 4th axis) to read into each of ``outs``; ``None`` for
            a 3D image (one array in ``outs``).

    Raises:
        NiftiValidationError: if the voxels cannot be read (out of memory included) or are not finite.
        ValueError: ``outs`` or ``volumes`` do not fit the image.
    """
    spatial = tuple(int(s) for s in img.shape[:3])
    for out in outs:
        if out.shape != spatial or out.dtype != np.float32:
            raise ValueError(f"outs must be float32 arrays of shape {spatial}, got {out.dtype} {out.shape}")
    count = int(np.prod(img.shape[3:], dtype=np.int64))
    if volumes is None:
        if len(outs) != 1 or count != 1:
            raise ValueError(f"a 3D image fills one array; {len(outs)} given for shape {tuple(img.shape)}")
        volumes = [0]
    if len(volumes) != len(outs) or any(not 0 <= v < count for v in volumes):
        raise ValueError(f"volumes must give one index in 0..{count - 1} per array, got {volumes}")
    proxy = img.dataobj
    slope, inter = (float(proxy.slope), float(proxy.inter)) if nib.is_proxy(proxy) else (1.0, 0.0)
    try:
        for v, raw in _raw_volumes(img, (*spatial, count), volumes):
            for out, wanted in zip(outs, volumes):
                if wanted == v:
                    out[...] = raw
            del raw
    except NiftiValidationError:
        raise
    except MemoryError:
        shape = (*spatial, count) if count > 1 else spatial
        raise out_of_memory_error(path, shape, img.get_data_dtype()) from None
    except Exception as err:
        raise NiftiValidationError(path, f"cannot read voxels ({type(err).__name__}: {err})") from err
    for out in outs:
        if np.isfinite(slope) and slope not in (0.0, 1.0):
            out *= np.float32(slope)
        if np.isfinite(inter) and inter != 0.0:
            out += np.float32(inter)
        if not np.all(np.isfinite(out)):
            bad = int(np.count_nonzero(~np.isfinite(out)))
            raise NiftiValidationError(path, f"{bad} voxel(s) are NaN or Inf")


def load_nifti(path: str | os.PathLike, *, check_crc: bool = True) -> tuple[np.ndarray, nib.Nifti1Image]:
    """Validate and read one 3D NIfTI volume as float32.

    Args:
        path: ``*.nii`` or ``*.nii.gz`` file.
        check_crc: check the gzip CRC of ``.gz`` files first (see the module docstring).

    Returns:
        ``(volume, img)``: ``volume`` is ``(D, H, W)`` float32 in the file's intensity units (header scaling
        applied); ``img`` is the nibabel image, for its ``affine`` and ``header``.

    Raises:
        NiftiValidationError: naming the file and what is wrong.

    Example:
        >>> volume, img = load_nifti("BraTS20_Training_001_flair.nii.gz")  # doctest: +SKIP
        >>> volume.dtype, volume.shape  # doctest: +SKIP
        (dtype('float32'), (240, 240, 155))
    """
    img = open_nifti(path, check_crc=check_crc)
    try:
        volume = np.empty(img.shape[:3], dtype=np.float32)
    except MemoryError:
        raise out_of_memory_error(path, img.shape[:3], np.float32) from None
    read_volume_into(img, volume, path)
    return volume, img


def save_nifti(
    path: str | os.PathLike,
    array: np.ndarray,
    affine: np.ndarray,
    header: nib.Nifti1Header | None = None,
    dtype: np.dtype | type | None = None,
) -> Path:
    """Write ``array`` as a NIfTI file atomically (a temporary file in the same folder, then ``os.replace``).

    A crash mid-write leaves either the old file or none, never a truncated one.

    Args:
        path: output ``*.nii`` or ``*.nii.gz`` (compression follows the suffix); parent folders are created.
        array: ``(D, H, W)`` or ``(D, H, W, T)`` data in NIfTI voxel order.
        affine: ``(4, 4)`` voxel-to-world matrix, usually the source scan's.
        header: source header to copy (descriptions, units, qform/sform codes); shape and dtype are updated.
        dtype: on-disk dtype (default ``array.dtype``); stored without scaling for float and matching int types.

    Returns:
        The written path.

    Raises:
        ValueError: if ``path`` does not end in ``.nii`` or ``.nii.gz`` or ``affine`` is not ``(4, 4)``.
    """
    check_type("path", path, (str, os.PathLike))
    path = Path(path)
    name = path.name.lower()
    if not (name.endswith(".nii") or name.endswith(".nii.gz")):
        raise ValueError(f"path must end in .nii or .nii.gz, got {str(path)!r}")
    affine = np.asarray(affine, dtype=np.float64)
    if affine.shape != (4, 4):
        raise ValueError(f"affine must be (4, 4), got {affine.shape}")
    array = np.asarray(array)
    dtype = np.dtype(dtype if dtype is not None else array.dtype)
    if array.dtype != dtype:
        array = array.astype(dtype)
    header = header.copy() if header is not None else None
    img = nib.Nifti1Image(array, affine, header=header)
    img.set_data_dtype(dtype)
    if header is None:  # a fresh header: say the affine is scanner space, in mm
        img.header.set_xyzt_units("mm", "sec")
        img.set_qform(affine, code=1)
        img.set_sform(affine, code=1)
    img.header.set_slope_inter(1.0, 0.0)
    img.header["cal_min"] = 0
    img.header["cal_max"] = 0
    path.parent.mkdir(parents=True, exist_ok=True)
    data = img.to_bytes()
    atomic_write_bytes(path, gzip.compress(data, compresslevel=1, mtime=0) if name.endswith(".nii.gz") else data)
    return path
