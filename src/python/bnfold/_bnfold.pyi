# The C extension over bnfold.h (src/python/bnfoldmodule.c).  Its functions
# return (status, message, report_json, output, rows); the package's
# functions (bnfold.fold, ...) turn them into results and exceptions.
from typing import Optional, Tuple, Union
import os

_Path = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]
_Buffer = Union[bytes, bytearray, memoryview]
# (model_order, action, layer, node, node_op, pattern, channels, dtype,
#  reason, graph, output, shapes, message)
_Row = Tuple[Optional[int], str, Optional[str], str, str, Optional[str], Optional[int], Optional[str],
             Optional[str], str, str, str, Optional[str]]
_Outcome = Tuple[int, str, Optional[str], Optional[bytes], list[_Row]]

OK: int
E_INVALID: int
E_IO: int
E_NOT_ONNX: int
E_NOMEM: int
E_VERIFY: int
SYNC_ALWAYS: int
SYNC_NEVER: int
SYNC_AUTO: int

def fold_buffer(data: _Buffer, name: Optional[str], *, fold_overridable: bool = ..., verify: bool = ...,
                tolerance: float = ..., stream: bool = ..., inline_external: bool = ..., sync: int = ...,
                replace_input: bool = ..., threads: int = ..., max_new_bytes: int = ...) -> _Outcome: ...
def inspect_buffer(data: _Buffer, name: Optional[str], *, fold_overridable: bool = ..., verify: bool = ...,
                   tolerance: float = ..., stream: bool = ..., inline_external: bool = ..., sync: int = ...,
                   replace_input: bool = ..., threads: int = ..., max_new_bytes: int = ...) -> _Outcome: ...
def fold_file(src: _Path, dst: _Path, *, fold_overridable: bool = ..., verify: bool = ..., tolerance: float = ...,
              stream: bool = ..., inline_external: bool = ..., sync: int = ..., replace_input: bool = ...,
              threads: int = ..., max_new_bytes: int = ...) -> _Outcome: ...
def inspect_file(src: _Path, *, fold_overridable: bool = ..., verify: bool = ..., tolerance: float = ...,
                 stream: bool = ..., inline_external: bool = ..., sync: int = ..., replace_input: bool = ...,
                 threads: int = ..., max_new_bytes: int = ...) -> _Outcome: ...
def version() -> str: ...
def reasons() -> Tuple[Tuple[str, str], ...]: ...
def status_name(code: int) -> str: ...
