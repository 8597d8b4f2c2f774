"""Every diagnostic code, declared once as a constant (in the way mypy's errorcodes.py does).

Why constants instead of bare strings: the analysers write `sink.error(E0201, ...)`, so a
mistyped code (`E0291`) is a name that does not exist and fails when the module is imported,
instead of surfacing as an "unregistered diagnostic code" only when that error path runs.
A `Code` *is* its string ("E0201"), so diagnostics, JSON reports and comparisons are
unchanged; its `description` is the title docs/errors.md uses as the code's heading.

Codes are stable: the first two digits are the category (diagnostics.CATEGORIES), and a
code is never reused for a different meaning. diagnostics.CODES (errors) and
diagnostics.WARNING_CODES (warnings) are derived from the constants below.
"""

from __future__ import annotations


class Code(str):
    """A declared diagnostic code: equal to (and hashing as) its text, plus its description (the docs heading)."""

    description: str

    def __new__(cls, code: str, description: str) -> Code:
        self = super().__new__(cls, code)
        self.description = description
        return self
# syntax
E0101 = Code("E0101", "unexpected character")
E0102 = Code("E0102", "unexpected token")
E0103 = Code("E0103", "unexpected end of file")
E0104 = Code("E0104", "invalid literal")
E0105 = Code("E0105", "invisible character")
E0106 = Code("E0106", "block is never closed")

# names
E0201 = Code("E0201", "duplicate declaration")
E0202 = Code("E0202", "unknown type or domain")
E0203 = Code("E0203", "unknown variable")
E0204 = Code("E0204", "unknown function")
E0205 = Code("E0205", "unknown table")
E0206 = Code("E0206", "unknown model")
E0207 = Code("E0207", "unknown network")
E0208 = Code("E0208", "unknown alignment")
E0209 = Code("E0209", "unknown enum value")
E0210 = Code("E0210", "ambiguous name (variable and enum value)")
E0211 = Code("E0211", "unknown dataset")
E0212 = Code("E0212", "unknown position")
E0213 = Code("E0213", "unknown group")
E0214 = Code("E0214", "not a constant integer")
E0215 = Code("E0215", "family used without an index")
E0216 = Code("E0216", "index outside the family's range")
E0217 = Code("E0217", "index is not computed from indices and constants")
E0218 = Code("E0218", "unknown aggregate or aggregate over no index")
E0220 = Code("E0220", "real value where a discrete value is needed")
E0221 = Code("E0221", "`real` type where only a finite type is allowed")

# types and domains
E0301 = Code("E0301", "type mismatch")
E0302 = Code("E0302", "empty or reversed integer range")
E0303 = Code("E0303", "value outside its domain")
E0304 = Code("E0304", "wrong number of arguments")
E0305 = Code("E0305", "mechanism produces a value outside the declared domain")
E0306 = Code("E0306", "invalid distribution")
E0307 = Code("E0307", "table key or value does not fit its type")
E0308 = Code("E0308", "incomplete table (no default and keys missing)")
E0309 = Code("E0309", "duplicate enum value or table key")
E0310 = Code("E0310", "unsatisfiable constraint")
E0311 = Code("E0311", "balanced sampling on a non-output or constant variable")
E0312 = Code("E0312", "empty or too large family range")
E0313 = Code("E0313", "real output checked without a tolerance")
E0314 = Code("E0314", "tolerance on a discrete output")
E0315 = Code("E0315", "network output read as the wrong kind (a value or classes)")
E0316 = Code("E0316", "invalid tolerance")

# graph
E0401 = Code("E0401", "cycle in the causal model")
E0402 = Code("E0402", "declared edge not used by the mechanism")
E0403 = Code("E0403", "mechanism uses a parent missing from edges {}")
E0404 = Code("E0404", "edge endpoint is not a variable of the model")
E0405 = Code("E0405", "model has no output")
E0406 = Code("E0406", "an input cannot have a mechanism or parents")

# examples
E0501 = Code("E0501", "example does not hold")
E0502 = Code("E0502", "example assigns a non-input variable")
E0503 = Code("E0503", "example leaves an input unassigned")
E0504 = Code("E0504", "example violates an input constraint")
E0505 = Code("E0505", "example intervenes on an input or unknown variable")

# alignment
E0601 = Code("E0601", "unknown site")
E0602 = Code("E0602", "bad site index")
E0603 = Code("E0603", "unknown featurizer")
E0604 = Code("E0604", "bad featurizer arguments")
E0605 = Code("E0605", "empty or reversed slice")
E0606 = Code("E0606", "template refers to an unknown slot")
E0607 = Code("E0607", "prompt cases do not cover the variable's values")
E0608 = Code("E0608", "variable aligned twice")
E0609 = Code("E0609", "output alignment problem")
E0610 = Code("E0610", "network option problem")
E0611 = Code("E0611", "position problem")
E0612 = Code("E0612", "featurizer not allowed here")
E0613 = Code("E0613", "variables share directions at one site")
E0614 = Code("E0614", "family alignment problem")
E0615 = Code("E0615", "position family problem")
E0616 = Code("E0616", "output read at a position the network does not read it at")
E0620 = Code("E0620", "not a readable SAE folder")
E0621 = Code("E0621", "SAE latent out of range")
E0622 = Code("E0622", "SAE shapes do not fit")
E0623 = Code("E0623", "latent search needs an sae featurizer")

# checks and circuits
E0701 = Code("E0701", "threshold out of [0, 1]")
E0702 = Code("E0702", "unknown metric")
E0703 = Code("E0703", "intervened variable is not aligned")
E0704 = Code("E0704", "bad check setting")
E0705 = Code("E0705", "duplicate check name")
E0706 = Code("E0706", "circuit node or edge problem")
E0707 = Code("E0707", "unknown control")
E0708 = Code("E0708", "check without interchange or expectations")
E0709 = Code("E0709", "conflicting statistics modes")
E0710 = Code("E0710", "ablation problem")
E0711 = Code("E0711", "localization sweep problem")
E0712 = Code("E0712", "bad control argument")
E0713 = Code("E0713", "locate over several variables problem")
E0717 = Code("E0717", "unknown circuit convention")
E0718 = Code("E0718", "circuit convention given twice")
E0719 = Code("E0719", "MLP node under a convention that keeps MLPs")
E0720 = Code("E0720", "edge granularity on a shortformer attention-only model")

# files
E0801 = Code("E0801", "file not found")
E0802 = Code("E0802", "file cannot be read")
E0803 = Code("E0803", "folder where a file is expected")
E0804 = Code("E0804", "not a model folder")
E0807 = Code("E0807", "file outside the spec's folder")
E0808 = Code("E0808", "remote host not allowed")

# warnings (the spec stays valid)
W0601 = Code("W0601", "prompt without placeholders")
W0610 = Code("W0610", "SAE hook name does not match the site")
W0701 = Code("W0701", "components outside the circuit kept under an unstated convention")


ALL: tuple[Code, ...] = tuple(v for v in tuple(globals().values()) if isinstance(v, Code))
ERRORS: tuple[Code, ...] = tuple(c for c in ALL if c.startswith("E"))
WARNINGS: tuple[Code, ...] = tuple(c for c in ALL if c.startswith("W"))
