"""Running claims: one module per claim kind, and the runner that dispatches them.

The stage after `run/` and `score/`: a claim (an alignment check, a circuit claim) goes in,
a `score.results.CheckResult` comes out. `runner` dispatches; `alignment`, `circuit`,
`locate` and `stress` run one kind each; `common` holds what several of them share.
"""
