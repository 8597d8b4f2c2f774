"""The networks of a run, loaded once, and where each one runs (which engine, which host).

Why apart from the runner: every claim kind loads its network through the same cache and
asks the same question — the torch engine here, nnsight here, or nnsight on a remote host —
so the alignment run, the circuit claim and the `locate` sweep import this module, and the
runner that dispatches them imports them; nothing here imports a claim module back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from causalspec.claims.common import CheckOptions
from causalspec.remote_hosts import refuse_reason
from causalspec.run.adapters import CheckUsageError
from causalspec.run.loading import (LoadedNetwork, NetworkLoadError, NetworkUnavailable, local_hf_path,
                                    load_hf_network, load_torch_network)
from causalspec.run.nnsight_backend import remote_target
from causalspec.semantics.analyse import SpecIR


@dataclass
class NetworkCache:
    """Networks loaded once per run, shared by every check that names them.

    `bound` holds networks the caller already has in memory (the Python API binds live
    modules to a spec's network names: `run.loading.bind_torch_network`,
    `bind_hf_network`): a bound name is served as it is, and its files are never read."""

    loaded: dict = field(default_factory=dict)
    # values claims of one run share (circuit claims: ablation means, m(N), m(∅))
    shared: dict = field(default_factory=dict)
    bound: dict[str, LoadedNetwork] = field(default_factory=dict)

    def get(self, ir: SpecIR, name: str, options: CheckOptions) -> LoadedNetwork:
        if name in self.bound:
            return self.bound[name]
        if name in self.loaded:
            value = self.loaded[name]
            if isinstance(value, Exception):
                raise value
            return value
        net = ir.networks[name]
        base_dir = Path(ir.file).resolve().parent
        try:
            _, remote = engine_choice(net, options, base_dir)
            if net.framework == "torch":
                if net.builder is None or net.weights is None:  # semantics.networks sets both for torch
                    raise NetworkLoadError(f"network `{name}`: a torch network needs its builder and weights")
                value = load_torch_network(name, net.builder.ref, net.weights, base_dir,
                                           net.encode.ref if net.encode else None,
                                           net.decode.ref if net.decode else None,
                                           options.device or net.device, options.dtype or net.dtype)
            else:
                value = load_hf_network(name, net.source, base_dir, net.model_class,
                                        options.device or net.device, options.dtype or net.dtype,
                                        trust_remote_code=net.trust_remote_code,
                                        allow_download=options.allow_download,
                                        device_map=options.device_map or net.device_map,
                                        weights=remote in (None, "local"))  # remote: the weights stay there
        except (NetworkUnavailable, NetworkLoadError) as exc:
            self.loaded[name] = exc
            raise
        self.loaded[name] = value
        return value


def engine_choice(net, options: CheckOptions, base_dir: Path) -> tuple[str, Any]:
    """(backend, remote target) for a network: the command line's choice, else the spec's
    `backend` statement, else the torch engine here. `--remote` implies the nnsight backend.

    A host named only by the spec is refused unless the user allowed it (causalspec.remote_hosts):
    the spec must not choose where the user's API key goes or whose pickled replies are loaded.
    This runs before the network is loaded, so a refused check contacts nothing."""
    if options.remote is not None:  # the user's own command line
        remote = remote_target(options.remote)
    else:
        host = getattr(net, "remote_host", None)
        if host:
            _allowed_spec_host(net, host)
        remote = remote_target((host or True) if getattr(net, "remote", False) else None)
    backend = options.backend or ("nnsight" if remote is not None else getattr(net, "backend_name", None)) or "torch"
    if remote is not None and backend != "nnsight":
        raise CheckUsageError(f"network `{net.name}`: remote execution runs nnsight sessions; use "
                              "`--backend nnsight` (or drop `--backend torch`)")
    if remote is not None and net.framework != "hf":
        raise CheckUsageError(f"network `{net.name}` is a torch network; NDIF runs hub models, so remote checks "
                              "need an `hf` network")
    if remote not in (None, "local") and net.framework == "hf" and local_hf_path(net.source, base_dir):
        raise CheckUsageError(f"network `{net.name}` is the local folder `{net.source}`; NDIF runs models it hosts, "
                              "named by their hub id (e.g. hf \"openai-community/gpt2\"); `--remote local` "
                              "dry-runs the remote path here")
    return backend, remote


def _allowed_spec_host(net, host: str) -> None:
    """Raise the refusal (a check ERROR) when the user has not allowed the spec's `host`."""
    span = getattr(net, "remote_span", None) or net.span
    reason = refuse_reason(host, f"network `{net.name}` ({span})")
    if reason is not None:
        raise CheckUsageError(reason)
