"""The output planner: where each command may write, decided before any work.

Every command that writes files (``upscale``, ``estimate``, ``degrade``, ``evaluate``) and the
studio's save and "Upscale all" paths ask an :class:`OutputPlan` for each file they are about to
write. The rules, in one place:

- no output may be an input of the run (compared as files: resolved paths and inodes, so a hard
  link or ``./a.png`` vs ``a.png`` count as the same file), whatever ``--overwrite`` says;
- no two outputs of the run may be one file (``--save-kernel`` equal to the image, two inputs
  ``a.png`` and ``a.jpg`` mapped to one name);
- an output name fits the file system (at most :data:`NAME_MAX_BYTES` bytes) and is not a folder;
- without ``overwrite`` an existing file is reported, never replaced. The writer
  (:func:`engine.atomic.write_atomic`) enforces the same rule atomically when the file appears
  between the plan and the write (another process): the loser is told, nothing is replaced.

Name patterns (``--name``) are checked once with :func:`check_name_pattern`: only the named fields,
and the result must be a plain file name (no folder part, so nothing lands outside ``--out``).
"""

from __future__ import annotations

import os
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

NAME_MAX_BYTES = 255
"""Longest file name (bytes, UTF-8) common file systems accept (ext4, NTFS, APFS)."""

DEFAULT_NAME_PATTERN = "{stem}_x{scale}_{method}.{ext}"
"""How an upscaled image is named: ``kernelscope-cli upscale --name``'s default and the studio's names."""


class OutputRefused(Exception):
    """An output the plan does not allow. ``exists`` is True when the only problem is that the file
    is there already and overwriting was not asked for (the caller may skip instead of failing)."""

    def __init__(self, path: str | os.PathLike[str], reason: str, *, exists: bool = False) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = Path(path)
        self.reason = reason
        self.exists = exists


@dataclass(frozen=True)
class _Key:
    real: str
    inode: tuple[int, int] | None


def _key(path: Path) -> _Key:
    try:
        st = os.stat(path)
        inode = (st.st_dev, st.st_ino)
    except (OSError, ValueError):
        inode = None
    return _Key(os.path.normcase(os.path.realpath(path)), inode)


class OutputPlan:
    """The inputs of a run and the outputs claimed so far; see the module docstring for the rules."""

    def __init__(self, inputs: Iterable[str | os.PathLike[str]] = (), *, overwrite: bool = False) -> None:
        self.overwrite = overwrite
        self._by_real: dict[str, Path] = {}
        self._by_inode: dict[tuple[int, int], Path] = {}
        self._claimed: dict[str, tuple[Path, str]] = {}
        for path in inputs:
            self.add_input(path)

    @property
    def inputs(self) -> list[Path]:
        return list(self._by_real.values())

    def add_input(self, path: str | os.PathLike[str]) -> None:
        key = _key(Path(path))
        self._by_real.setdefault(key.real, Path(path))
        if key.inode is not None:
            self._by_inode.setdefault(key.inode, Path(path))

    def input_matching(self, path: str | os.PathLike[str]) -> Path | None:
        """The input of the run that ``path`` would replace, if any: the same resolved path, or the
        same file (inode) under another name (hard link, case-insensitive folder)."""
        key = _key(Path(path))
        found = self._by_real.get(key.real)
        if found is None and key.inode is not None:
            found = self._by_inode.get(key.inode)
        return found

    def check(self, path: str | os.PathLike[str], what: str = "output") -> None:
        """Raise :class:`OutputRefused` if ``path`` may not be written as ``what``; claims nothing."""
        target = Path(path)
        size = len(os.fsencode(target.name))
        if size > NAME_MAX_BYTES:
            raise OutputRefused(target, f"{what} name is too long ({size} bytes; file systems allow "
                                        f"{NAME_MAX_BYTES})")
        source = self.input_matching(target)
        if source is not None:
            raise OutputRefused(target, f"{what} would replace the input {source}")
        claimed = self._claimed.get(_key(target).real)
        if claimed is not None:
            raise OutputRefused(target, f"{what} is also the {claimed[1]} of this run")
        try:
            if target.is_dir():
                raise OutputRefused(target, f"{what} is an existing folder")
            exists = os.path.lexists(target)
        except OSError as exc:
            raise OutputRefused(target, f"cannot use this {what} ({exc.strerror or exc})") from None
        if exists and not self.overwrite:
            raise OutputRefused(target, "already exists (use --overwrite to replace it)", exists=True)

    def claim(self, path: str | os.PathLike[str], what: str = "output") -> Path:
        """:meth:`check`, then reserve ``path`` so that no later output of the run may use it."""
        self.check(path, what)
        target = Path(path)
        self._claimed[_key(target).real] = (target, what)
        return target

    def claim_all(self, items: Iterable[tuple[str | os.PathLike[str], str]]) -> list[Path]:
        """Claim the outputs of one job, all or none. A real conflict (an input, another output, a
        bad name) is raised before an "already exists" refusal, which the caller may turn into a skip."""
        items = [(Path(path), what) for path, what in items]
        seen: dict[str, str] = {}
        for path, what in items:
            real = _key(path).real
            if real in seen:
                raise OutputRefused(path, f"{what} is also the {seen[real]} of this run")
            seen[real] = what
        existing: OutputRefused | None = None
        for path, what in items:
            try:
                self.check(path, what)
            except OutputRefused as exc:
                if not exc.exists:
                    raise
                existing = existing or exc
        if existing is not None:
            raise existing
        return [self.claim(path, what) for path, what in items]


def output_name(stem: str, scale: int, method: str, ext: str, pattern: str = DEFAULT_NAME_PATTERN) -> str:
    """The file name of ``stem``'s result: ``pattern`` (checked with :func:`check_name_pattern`) filled in,
    e.g. ``photo_x4_manet.png``. The command line and the studio name every upscaled image with it."""
    return pattern.format(stem=stem, scale=scale, method=method, ext=ext)


def kernels_name(image_name: str) -> str:
    """``<stem>_kernels.npz``: the kernel map saved beside the image named ``image_name``."""
    return Path(image_name).stem + "_kernels.npz"


def numbered_name(name: str, n: int) -> str:
    """``name`` itself for ``n`` = 0, else ``<stem>_<n><suffix>`` (the n-th alternative when it is taken)."""
    path = Path(name)
    return name if n == 0 else f"{path.stem}_{n}{path.suffix}"


def check_out_folder(folder: str | os.PathLike[str], option: str = "--out") -> str | None:
    """A one-line reason why ``folder`` cannot be an output folder, else None (it may not exist yet)."""
    path = Path(folder)
    try:
        if path.exists() and not path.is_dir():
            return f"{option} {path}: is an existing file, not a folder"
        parent = path
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
        if parent.exists() and not parent.is_dir():
            return f"{option} {path}: {parent} is a file, not a folder"
    except OSError as exc:
        return f"{option} {path}: cannot be used ({exc.strerror or exc})"
    return None


def make_out_folder(folder: str | os.PathLike[str], option: str = "--out") -> str | None:
    """Create ``folder`` (and its parents); a one-line reason on failure, else None."""
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return f"{option} {folder}: cannot create the folder ({exc.strerror or exc})"
    return None


def check_name_pattern(pattern: str, fields: Mapping[str, object], option: str = "--name") -> str | None:
    """A one-line reason why ``pattern`` is not a usable output-name pattern, else None.

    Allowed: literal text and ``{field}`` for the names in ``fields`` (with an optional format
    spec, e.g. ``{scale:02d}``); ``fields`` holds sample values to try the pattern with. The result
    must be a plain file name: not empty, no folder separator, not ``.`` or ``..``.
    """
    known = ", ".join("{" + name + "}" for name in fields)
    try:
        parsed = list(string.Formatter().parse(pattern))
    except ValueError as exc:
        return f"{option} {pattern!r}: not a valid pattern ({exc}); use {known}"
    for _literal, field, _spec, _conversion in parsed:
        if field is None:
            continue
        if field == "" or field.isdigit():
            return f"{option} {pattern!r}: positional field {{{field}}}; use the named fields {known}"
        if field not in fields:
            return f"{option} {pattern!r}: unknown field {{{field}}}; use {known}"
    try:
        name = pattern.format(**fields)
    except (ValueError, KeyError, IndexError, AttributeError, TypeError) as exc:
        return f"{option} {pattern!r}: cannot be filled in ({exc}); use {known}"
    return check_file_name(name, f"{option} {pattern!r}")


def check_file_name(name: str, label: str) -> str | None:
    """A one-line reason why ``name`` is not a plain file name in a folder, else None."""
    separators = {"/", os.sep} | ({os.altsep} if os.altsep else set())
    if not name or name in (".", ".."):
        return f"{label}: gives the file name {name!r}, which names no file"
    if any(sep in name for sep in separators) or "\x00" in name:
        return f"{label}: gives {name!r}, which is not a plain file name (no folders allowed)"
    size = len(os.fsencode(name))
    if size > NAME_MAX_BYTES:
        return f"{label}: gives a name of {size} bytes; file systems allow {NAME_MAX_BYTES}"
    return None
