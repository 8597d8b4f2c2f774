"""The engine backends, as values: which one runs a check's passes is chosen once.

Why objects and not a flag on the engine: an engine used to be built and then told how to run
(attributes set afterwards). Now a check picks one backend object — `TorchBackend()` or
`NNsightBackend(remote)`, in the spirit of nnsight's own backends — and that object builds its
engine from one frozen `EngineOptions`; nothing is reconfigured after that.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Union

from causalspec.run.engine import Engine, EngineOptions
from causalspec.run.nnsight_backend import NNsightEngine


@dataclass(frozen=True)
class TorchBackend:
    """Hooks on the loaded torch model (incremental patched forwards where the model allows)."""

    name: ClassVar[str] = "torch"

    def engine(self, adapter, module, family, options: EngineOptions = EngineOptions()) -> Engine:
        return Engine(adapter, module, family, options)


@dataclass(frozen=True)
class NNsightBackend:
    """nnsight sessions, here or remote (`run.nnsight_backend.remote_target`: None, True for
    NDIF, "local" for nnsight's dry run, or a self-hosted NDIF's URL)."""

    remote: Any = None
    name: ClassVar[str] = "nnsight"

    def engine(self, adapter, module, family, options: EngineOptions = EngineOptions()) -> Engine:
        return NNsightEngine(adapter, module, family, options, remote=self.remote)


Backend = Union[TorchBackend, NNsightBackend]


def backend_for(name: str, remote: Any = None) -> Backend:
    """The backend object named `name` ("torch" | "nnsight"; `remote` only for nnsight)."""
    if name == "nnsight":
        return NNsightBackend(remote)
    if remote is not None:
        raise ValueError("only the nnsight backend runs remotely")
    return TorchBackend()


__all__ = ["Backend", "NNsightBackend", "TorchBackend", "backend_for"]
