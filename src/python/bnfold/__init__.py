"""Fold BatchNormalization into the layers of ONNX models, exactly.

bnfold removes inference-mode BatchNormalization nodes (and per-channel
Mul/Add) by folding them into the Conv, ConvTranspose, Gemm or MatMul next
to them, checks every fusion numerically before anything is returned, and
reports what it folded, what it left and why.  This package is a thin layer
over libbnfold, the C library the ``bnfold`` program is built on::

    import bnfold, onnx
    folded, report = bnfold.fold(onnx.load("model.onnx"))
    print(report.folded, "folded;", [s.reason for s in report.skipped])
    onnx.save(folded, "model.folded.onnx")

- :func:`fold` folds a model held in memory: an ``onnx.ModelProto`` gives a
  ModelProto back, bytes (bytearray, memoryview) give bytes back.  ``onnx``
  is imported only for a ModelProto.
- :func:`fold_file` folds a file into another, external data included.
- :func:`check` and :func:`list` tell what would fold, and write nothing.
- Every failure is a :class:`Error`: :class:`NotONNXError`,
  :class:`FileIOError`, :class:`VerifyError`, ...

The library runs without the GIL: other threads go on meanwhile, and two
threads may fold two models at once.  ``python3 -m bnfold ARGS...`` runs the
bnfold program that comes with the package (the same command line).
"""

from __future__ import annotations

import builtins
import json
import os
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple, Union, overload

from . import _bnfold

if TYPE_CHECKING:  # onnx is needed only when a ModelProto is passed
    import onnx

__all__ = [
    "fold", "fold_file", "check", "list", "Report", "Entry", "Row", "REASONS",
    "Error", "InvalidArgumentError", "FileIOError", "NotONNXError", "OutOfMemoryError", "VerifyError",
    "__version__", "program",
]

__version__: str = _bnfold.version()

#: Every reason code a skip may carry, with its one-line explanation
#: (docs/reasons.md).
REASONS: Mapping[str, str] = dict(_bnfold.reasons())

Buffer = Union[bytes, bytearray, memoryview]
Path = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]


# ------------------------------------------------------------------ errors

class Error(Exception):
    """A call of bnfold failed.

    ``code`` is the status's stable name, as the report's ``error.code``
    has it (``"not_onnx"``, ``"io_error"``, ``"verify_failed"``,
    ``"invalid_argument"``, ``"out_of_memory"``); ``path`` the file (or the
    name given for a buffer) the message is about, or None; ``reason`` the
    rest of the message.  ``str(error)`` is the library's one line,
    ``"PATH: REASON"``.  ``report`` is the :class:`Report` of the call when
    there is one (a :class:`VerifyError` has it: it tells which fusion
    failed its check), else None.
    """

    def __init__(self, code: str, reason: str, path: str | None = None, report: Report | None = None):
        super().__init__(code, reason, path)
        self.code = code
        self.reason = reason
        self.path = path
        self.report = report

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}" if self.path is not None else self.reason


class InvalidArgumentError(Error, ValueError):
    """An argument asks for what cannot be done (code ``invalid_argument``),
    such as writing over the input without ``in_place``."""


class FileIOError(Error):
    """A file cannot be opened, read, written or renamed (code ``io_error``)."""


class NotONNXError(Error, ValueError):
    """The input is not a well-formed ONNX model, or breaks a limit (code
    ``not_onnx``): empty, truncated, not protobuf, or not a model."""


class OutOfMemoryError(Error, MemoryError):
    """Memory or address space ran out (code ``out_of_memory``)."""


class VerifyError(Error):
    """A fusion failed its numeric check (code ``verify_failed``): nothing
    was written or returned.  ``report`` tells which fusion failed and by
    how much (its ``verify`` record)."""


_ERRORS: dict[int, type[Error]] = {
    _bnfold.E_INVALID: InvalidArgumentError,
    _bnfold.E_IO: FileIOError,
    _bnfold.E_NOT_ONNX: NotONNXError,
    _bnfold.E_NOMEM: OutOfMemoryError,
    _bnfold.E_VERIFY: VerifyError,
}


def _error(status: int, message: str, names: tuple[str, ...], report: Report | None) -> Error:
    """The exception for a failed call: its message split into the path it
    names (one of names, the longest that fits) and the reason."""
    path, reason = None, message
    for name in sorted(names, key=len, reverse=True):
        if message.startswith(name + ": "):
            path, reason = name, message[len(name) + 2:]
            break
    cls = _ERRORS.get(status, Error)
    return cls(_bnfold.status_name(status), reason, path, report)


# ------------------------------------------------------------------ the report

def _freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return Entry(value)
    if isinstance(value, builtins.list):
        return tuple(_freeze(v) for v in value)
    return value


class Entry(Mapping[str, Any]):
    """A read-only mapping of the report (a fusion, a skip, ``counts``...)
    whose keys are also attributes: ``skip["reason"]`` is ``skip.reason``.
    Lists are tuples, objects are Entry."""

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[str, Any]):
        object.__setattr__(self, "_data", {k: _freeze(v) for k, v in data.items()})

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __getattr__(self, key: str) -> Any:
        if key.startswith("_"):  # not a report key; and no recursion before _data is set
            raise AttributeError(key)
        try:
            return self._data[key]
        except KeyError:
            raise AttributeError(key) from None

    def __reduce__(self) -> tuple[Any, ...]:
        # copy, deepcopy and pickle: made again from plain data.
        return (type(self), (self.to_dict(),))

    def __setattr__(self, key: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is read-only")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.to_dict()!r})"

    def to_dict(self) -> dict[str, Any]:
        """A plain, mutable copy (dicts and lists), as ``json.loads`` gives."""
        return _thaw(self)


def _thaw(value: Any) -> Any:
    if isinstance(value, Entry):
        return {k: _thaw(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [_thaw(v) for v in value]
    return value


class Report(Entry):
    """What one call found: the library's JSON report of one input, the
    entry the bnfold program lists in its report's ``inputs``
    (docs/report.md), as a read-only mapping.

    Beside the keys (``report["counts"]["folded"]``, ``report.fusions``...),
    the counts are attributes: ``bn_found``, ``folded``, ``affine_folded``,
    ``nodes_before``, ``nodes_after``, ``graph_inputs_removed``, and
    ``n_skipped`` (BatchNormalization nodes left).  ``fusions`` and
    ``skipped`` hold one :class:`Entry` per BatchNormalization folded or
    left (each skip with its ``reason`` code, see :data:`REASONS`);
    ``affine_fusions`` and ``affine_skipped`` the same for per-channel
    Mul/Add.  ``str(report)`` is the JSON text as the library wrote it.
    """

    __slots__ = ("_json",)

    def __init__(self, json_text: str):
        Entry.__init__(self, json.loads(json_text))
        object.__setattr__(self, "_json", json_text)

    def __str__(self) -> str:
        return self._json

    def json(self) -> str:
        """The report as the library wrote it (JSON text)."""
        return self._json

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self._json,))

    def _count(self, key: str) -> int:
        return int(self._data["counts"][key]) if "counts" in self._data else 0

    @property
    def bn_found(self) -> int:
        """BatchNormalization nodes in the model, subgraphs included."""
        return self._count("bn_found")

    @property
    def folded(self) -> int:
        """Of them, folded (for :func:`check` and :func:`list`: that would fold)."""
        return self._count("folded")

    @property
    def affine_folded(self) -> int:
        """Per-channel Mul/Add folded into the layer before them."""
        return self._count("affine_folded")

    @property
    def n_skipped(self) -> int:
        """BatchNormalization nodes left, each with a reason in :attr:`skipped`."""
        return self._count("skipped")

    @property
    def nodes_before(self) -> int:
        return self._count("nodes_before")

    @property
    def nodes_after(self) -> int:
        return self._count("nodes_after")

    @property
    def graph_inputs_removed(self) -> int:
        """Graph inputs removed with ``fold_overridable``."""
        return self._count("graph_inputs_removed")

    @property
    def fusions(self) -> tuple[Entry, ...]:
        return self._data.get("fusions", ())

    @property
    def affine_fusions(self) -> tuple[Entry, ...]:
        return self._data.get("affine_fusions", ())

    @property
    def skipped(self) -> tuple[Entry, ...]:
        return self._data.get("skipped", ())

    @property
    def affine_skipped(self) -> tuple[Entry, ...]:
        return self._data.get("affine_skipped", ())


class Row(NamedTuple):
    """One row of :func:`list`, as ``bnfold --list -v`` prints it: a node
    that folds or stays (a BatchNormalization, or a Mul or Add of a
    constant next to a layer)."""

    layer: str | None      #: the layer it folds (would fold) into, named for people; None if none
    node: str              #: the BatchNormalization (or Mul/Add), named for people
    node_op: str           #: "BatchNormalization", "Mul" or "Add"
    pattern: str | None    #: "conv_bn", "gemm_bn", ... for a fold, else None
    channels: int | None   #: for a fold
    dtype: str | None      #: for a fold: "float32", "float16", ...
    action: str            #: "fold" or "skip"
    reason: str | None     #: for a skip: its code (see REASONS)
    graph: str             #: the graph it is in ("main/loop/body", "function NAME"...)
    output: str            #: the node's output
    shapes: str            #: the shapes bnfold inferred around it
    message: str | None    #: for a skip: why, in words


# ------------------------------------------------------------------ options

def _options(fold_overridable: bool = False, verify: bool = True, tolerance: float | None = None,
             threads: int = 0, max_new_bytes: int = 0, stream: bool = True, inline: bool = False,
             sync: bool | None = None, in_place: bool = False) -> dict[str, Any]:
    """The library's options from the keywords of the Python API."""
    if tolerance is not None:
        tolerance = float(tolerance)
        if not (0 <= tolerance < float("inf")):
            raise ValueError(f"tolerance must be a number >= 0, not {tolerance!r}")
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 0:
        raise ValueError(f"threads must be an int >= 0 (0: the default), not {threads!r}")
    if isinstance(max_new_bytes, bool) or not isinstance(max_new_bytes, int) or max_new_bytes < 0:
        raise ValueError(f"max_new_bytes must be an int >= 0 (0: the default), not {max_new_bytes!r}")
    if sync not in (None, True, False):
        raise ValueError(f"sync must be True, False or None, not {sync!r}")
    return {
        "fold_overridable": bool(fold_overridable),
        "verify": bool(verify),
        "tolerance": -1.0 if tolerance is None else tolerance,
        "threads": threads,
        "max_new_bytes": max_new_bytes,
        "stream": bool(stream),
        "inline_external": bool(inline),
        "sync": _bnfold.SYNC_AUTO if sync is None else _bnfold.SYNC_ALWAYS if sync else _bnfold.SYNC_NEVER,
        "replace_input": bool(in_place),
    }


def _call(func: Any, args: tuple[Any, ...], names: tuple[str, ...], options: dict[str, Any]) -> tuple[Any, Report, Any]:
    status, message, report_json, out, rows = func(*args, **options)
    report = Report(report_json) if report_json is not None else None
    if status != _bnfold.OK:
        raise _error(status, message, names, report)
    assert report is not None
    return out, report, rows


def _is_model_proto(model: Any) -> bool:
    # Without importing onnx: a ModelProto is recognised by its class.
    cls = type(model)
    return cls.__name__ == "ModelProto" and hasattr(model, "SerializeToString")


def _as_buffer(model: Any, what: str) -> tuple[Any, bool]:
    """(bytes-like, is_proto) of a model given to fold, check or list."""
    if _is_model_proto(model):
        return model.SerializeToString(), True
    if isinstance(model, (bytes, bytearray, memoryview)):
        return model, False
    if isinstance(model, (str, os.PathLike)):
        raise TypeError(f"{what}() takes a model in memory (onnx.ModelProto, bytes, bytearray or memoryview), "
                        f"not a path: use bnfold.fold_file(src, dst) for files")
    raise TypeError(f"{what}() takes an onnx.ModelProto, bytes, bytearray or memoryview, "
                    f"not {type(model).__name__}")


def _display(path: Any) -> str:
    return os.fsdecode(os.fspath(path))


# ------------------------------------------------------------------ the calls

@overload
def fold(model: onnx.ModelProto, *, fold_overridable: bool = False, verify: bool = True,
         tolerance: float | None = None, name: str | None = None, threads: int = 0,
         max_new_bytes: int = 0) -> tuple[onnx.ModelProto, Report]: ...


@overload
def fold(model: Buffer, *, fold_overridable: bool = False, verify: bool = True,
         tolerance: float | None = None, name: str | None = None, threads: int = 0,
         max_new_bytes: int = 0) -> tuple[bytes, Report]: ...


def fold(model: onnx.ModelProto | Buffer, *, fold_overridable: bool = False, verify: bool = True,
         tolerance: float | None = None, name: str | None = None, threads: int = 0,
         max_new_bytes: int = 0) -> tuple[onnx.ModelProto | bytes, Report]:
    """Fold the BatchNormalization nodes of a model held in memory.

    ``model`` is an ``onnx.ModelProto`` (a new ModelProto is returned; the
    one given is left as it is) or the bytes of a model as ``bytes``,
    ``bytearray`` or ``memoryview`` (``bytes`` are returned).  The model
    must hold its weights: in one whose weights are in external data files,
    each BatchNormalization is left with reason ``unsupported_storage``
    (:func:`fold_file` reads the files beside the model).  The bytes are
    read where they are, while other threads run: a ``bytearray``, a
    writable ``memoryview`` or an array changed by another thread during
    the call gives an undefined output (it cannot be resized meanwhile).

    Options, as the bnfold program's:

    - ``fold_overridable`` (``--fold-overridable``): also fold initializers
      listed as graph inputs (IR >= 4), removing those inputs;
    - ``verify`` (``--verify``, ``--no-verify``): check every fusion
      numerically; on a failed check :class:`VerifyError` is raised and
      nothing is returned;
    - ``tolerance`` (``--tolerance``): the relative error a fusion may show,
      instead of about 2 rounding units of its type;
    - ``name``: the model's name in messages and the report (default
      ``"<buffer>"``);
    - ``threads``: threads the call may use (0: two where the machine has
      two CPUs or more; the result is the same for any number);
    - ``max_new_bytes``: bytes new weight tensors (copies of shared weights)
      may take in all (0: the input's size or 256 MiB, whichever is larger).

    Returns ``(folded model, Report)``.  A model where nothing folds comes
    back byte for byte.  Raises :class:`NotONNXError` for bytes that are not
    an ONNX model, :class:`VerifyError`, :class:`InvalidArgumentError`,
    :class:`OutOfMemoryError`; ``TypeError`` for what is not a model.
    """
    data, proto = _as_buffer(model, "fold")
    label = "<buffer>" if name is None else name
    opts = _options(fold_overridable, verify, tolerance, threads, max_new_bytes)
    out, report, _ = _call(_bnfold.fold_buffer, (data, label), (label,), opts)
    del data
    if proto:
        import onnx  # only here: bytes in and out need no onnx
        folded = onnx.ModelProto()
        folded.ParseFromString(out)
        return folded, report
    return out, report


def fold_file(src: Path, dst: Path | None = None, *, fold_overridable: bool = False, verify: bool = True,
              tolerance: float | None = None, stream: bool = True, inline: bool = False,
              sync: bool | None = None, in_place: bool = False, threads: int = 0,
              max_new_bytes: int = 0) -> Report:
    """Fold the model at ``src`` and write it to ``dst``, as
    ``bnfold SRC -o DST`` does.

    The output is written to a temp file in ``dst``'s folder and renamed
    into place only when all went well: on any error nothing is left at
    ``dst`` and a file there is untouched.  Weights in external data files
    are read beside ``src`` and written to ``DST.data`` beside ``dst``.
    Memory does not grow with the weights (they are streamed from ``src``).

    Options: those of :func:`fold` (but ``name``), and, as the program's:

    - ``stream`` (``--no-stream`` is ``stream=False``): read every weight
      into memory instead (the same output);
    - ``inline`` (``--inline``): put weights kept in external data files
      into the output model itself;
    - ``sync`` (``--sync`` is True, ``--no-sync`` False): wait for the output
      to reach the disk before renaming it into place; None (default): only
      when it replaces a file;
    - ``in_place`` (``--in-place``): replace ``src`` with its folded model
      (``dst`` is then ``src``, or None).

    Returns the :class:`Report`.  Raises :class:`FileIOError`,
    :class:`NotONNXError`, :class:`VerifyError`, :class:`InvalidArgumentError`
    (``dst`` is ``src`` without ``in_place``...), :class:`OutOfMemoryError`.
    """
    if dst is None:
        if not in_place:
            raise TypeError("fold_file() needs dst, or in_place=True")
        dst = src
    opts = _options(fold_overridable, verify, tolerance, threads, max_new_bytes, stream, inline, sync, in_place)
    _, report, _ = _call(_bnfold.fold_file, (src, dst), (_display(src), _display(dst)), opts)
    return report


def _inspect(model: Any, what: str, options: dict[str, Any]) -> tuple[Report, Any]:
    opts = _options(**options)
    if isinstance(model, (str, os.PathLike)):
        _, report, rows = _call(_bnfold.inspect_file, (model,), (_display(model),), opts)
        return report, rows
    data, _ = _as_buffer(model, what)
    _, report, rows = _call(_bnfold.inspect_buffer, (data, "<buffer>"), ("<buffer>",), opts)
    return report, rows


def check(model: onnx.ModelProto | Buffer | Path, *, fold_overridable: bool = False, verify: bool = True,
          tolerance: float | None = None, stream: bool = True, threads: int = 0,
          max_new_bytes: int = 0) -> Report:
    """What a fold would do, without folding: ``bnfold --check``.

    ``model`` is an ``onnx.ModelProto``, the bytes of a model (``bytes``,
    ``bytearray``, ``memoryview``), or the path of a model file (``str`` or
    ``os.PathLike``; external data is read beside it).  Every fusion is
    checked numerically as a fold would (unless ``verify=False``); options as
    :func:`fold` and :func:`fold_file`.  Returns the :class:`Report`:
    ``report.folded`` is what would fold, ``report.skipped`` what would stay
    and why.  Raises as :func:`fold`.
    """
    return _inspect(model, "check", dict(fold_overridable=fold_overridable, verify=verify, tolerance=tolerance,
                                          stream=stream, threads=threads, max_new_bytes=max_new_bytes))[0]


def list(model: onnx.ModelProto | Buffer | Path, *, fold_overridable: bool = False, verify: bool = True,
         tolerance: float | None = None, stream: bool = True, threads: int = 0,
         max_new_bytes: int = 0) -> builtins.list[Row]:
    """Every BatchNormalization (and Mul/Add of a constant next to a layer)
    of a model, what would happen to it and why: the rows of
    ``bnfold --list -v``, in the model's order, as :class:`Row` tuples.

    ``model`` and the options as :func:`check`.
    """
    _, rows = _inspect(model, "list", dict(fold_overridable=fold_overridable, verify=verify, tolerance=tolerance,
                                           stream=stream, threads=threads, max_new_bytes=max_new_bytes))
    # Model order; a node not found in the model comes after, as reported.
    keyed = sorted(enumerate(rows), key=lambda ir: (ir[1][0] is None, ir[1][0] if ir[1][0] is not None else ir[0]))
    return [Row(r[2], r[3], r[4], r[5], r[6], r[7], r[1], r[8], r[9], r[10], r[11], r[12]) for _, r in keyed]


def program() -> str:
    """The path of the bnfold program that comes with this package, which
    ``python3 -m bnfold`` runs."""
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "bin", "bnfold")
