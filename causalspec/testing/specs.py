"""Spec texts shared by tests, benchmarks and examples.

Why a module: the hierarchical-equality model, its hand-built network and a spec whose
network is missing are the fixtures most tests start from; one copy keeps them identical
everywhere (a test that drifts from the others silently tests something else).
"""

from __future__ import annotations

from pathlib import Path

from causalspec.semantics.analyse import load_text


def _hier_eq_example() -> Path:
    """The hier_eq example's folder (its `model.py` and `hand.safetensors`): the copy the wheel
    ships in `causalspec/testing/_hier_eq/` (pyproject's force-include), else `examples/hier_eq`
    of a source checkout. So `causalspec.testing` works from an installed wheel."""
    packaged = Path(__file__).resolve().parent / "_hier_eq"
    if (packaged / "model.py").is_file():
        return packaged
    return Path(__file__).resolve().parents[2] / "examples" / "hier_eq"


HIER_EQ_EXAMPLE = _hier_eq_example()

HIER_EQ_MODEL = """
model HierEq {
  domain Obj = int 0..19
  input  W, X, Y, Z : Obj ~ uniform
  var    WX : bool = W == X
  var    YZ : bool = Y == Z
  output O  : bool = WX == YZ
  sample balanced O
}
"""


def only_model(text: str):
    """The one model (semantics.model.CausalModel) that a spec text declares."""
    (model,) = load_text(text).models.values()
    return model


def hand_network(name: str = "hand", example: Path = HIER_EQ_EXAMPLE, weights: str | Path | None = None) -> str:
    """The hand-built hierarchical-equality net (examples/hier_eq) as a `network` block."""
    weights = weights if weights is not None else example / "hand.safetensors"
    return (f'\nnetwork {name} = torch "{example}/model.py:build_hand" weights "{weights}" {{\n'
            f'  encode "{example}/model.py:encode"\n}}\n')


def hier_eq_alignment(name: str, wx: str, yz: str, network: str = "hand") -> str:
    """An alignment of WX and YZ to two slices of `layers.0` (e.g. "[0:20]")."""
    return (f"\nalign HierEq to {network} as {name} {{\n"
            f'  WX -> module "layers.0" output : {wx}\n'
            f'  YZ -> module "layers.0" output : {yz}\n'
            f"  O  -> output : argmax\n}}\n")


# The hand net with its true alignment `Good` and a check that it holds (IIA 1.0 on this net);
# append HIER_EQ_MODEL in front to make a complete spec.
HAND_GOOD_CHECK = hand_network() + hier_eq_alignment("Good", "[0:20]", "[20:40]") + """
check Good {
  interchange WX, YZ
  pairs 48 seed 0
  expect iia >= 0.95 each
}
"""


# A complete spec whose `hf` network is a hub id not in the local cache: its check must be *skipped*
# (the only skip a network can cause; `--strict` makes it a failure).
MISSING_HF_SPEC = """
model Copy {
  domain Name = enum {Mary, John}
  input  A : Name ~ uniform
  var    B : Name = A
  output answer : Name = B
}

network missing = hf "causalspec-test/absent-model" {
  prompt "Say {A}:"
  answer " {answer}"
}

align Copy to missing as CopyPos {
  B -> resid.post[0] @ last
  answer -> output
}

check CopyPos {
  interchange B
  pairs 16 seed 0
  expect iia >= 0.5
}
"""


# The "mover" task on a tiny word-tokenized LM (causalspec.testing.tiny): the answer is the
# first name of "When A and B went to the store, B gave a drink to". MOVER_WORDS is the word
# tokenizer's vocabulary for its prompts; "Annabel" is two tokens (Anna ##bel), so rows differ
# in length and batches are really padded.
MOVER_NAMES = ["Mary", "John", "Tom", "Annabel"]
MOVER_WORDS = "When Then and went to the store gave a drink".split() + ["Mary", "John", "Tom", "Anna", "##bel"]
MOVER_PROMPT = "When {A} and {B} went to the store, {B} gave a drink to"


def mover_spec(path: str | Path, *, site: str = "resid.post[0]", at: str = "last", positions: bool = False,
               pairs: int = 32, batch: int = 8) -> str:
    """A spec of the one-prompt mover task over the `hf` network `net` at `path`: alignment
    `Pos` puts `mover` at `site @ at` (a featurizer goes after the position: `at="END : [0:16]"`),
    check `Pos` interchanges it on `pairs` pairs (seed 0, batch `batch`, `expect iia >= 0.0`).
    `positions` declares `A1 = slot(A, 1)` and `END = last`."""
    declared = "\n  position A1 = slot(A, 1)\n  position END = last" if positions else ""
    return f"""
model P {{
  domain Name = enum {{{", ".join(MOVER_NAMES)}}}
  input  A, B : Name ~ uniform where A != B
  var    mover : Name = A
  output answer : Name = mover
}}
network net = hf "{path}" {{
  prompt "{MOVER_PROMPT}"
  answer " {{answer}}"{declared}
}}
align P to net as Pos {{
  mover -> {site} @ {at}
  answer -> output
}}
check Pos {{
  interchange mover
  pairs {pairs} seed 0 batch {batch}
  expect iia >= 0.0
}}
"""
