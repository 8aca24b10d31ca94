"""The score of `make mutate`: mutmut's results per module, checked against the survivors' list.

A mutant counts as killed when a test failed or timed out on it. Every other result (survived,
no test ran it, suspicious) must be listed in tests/mutation_survivors.md with the reason why it
is equivalent; the run fails if one is not, or if the score is below MINIMUM_SCORE.
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MUTANTS = ROOT / "mutants"
SURVIVORS = ROOT / "tests" / "mutation_survivors.md"
MINIMUM_SCORE = 0.90
KILLED_CODES = {1, 3, 36, -24, 24, 152, 255}  # a failing test; a timeout (see mutmut's stats.py)
NO_TESTS_CODES = {5, 33}
LISTED = re.compile(r"^\| `([\w.ǁ]+__mutmut_\d+)` \|", re.MULTILINE)


def results() -> dict[str, int | None]:
    """Mutant name -> mutmut's exit code, for every mutant of the last run."""
    codes: dict[str, int | None] = {}
    for meta in sorted(MUTANTS.rglob("*.py.meta")):
        codes.update(json.loads(meta.read_text())["exit_code_by_key"])
    return codes


def module_of(mutant: str) -> str:
    return mutant.split(".x", 1)[0].removeprefix("ecom_pipeline.")


def main() -> int:
    codes = results()
    if not codes:
        print("no mutmut results in mutants/: run `make mutate`", file=sys.stderr)
        return 2
    unchecked = sorted(name for name, code in codes.items() if code is None)
    if unchecked:
        print(f"{len(unchecked)} mutants were not checked (an interrupted run?)", file=sys.stderr)
        return 2
    killed, total = Counter(), Counter()
    survivors = []
    for name, code in codes.items():
        total[module_of(name)] += 1
        if code in KILLED_CODES:
            killed[module_of(name)] += 1
        else:
            survivors.append(name)

    print(f"\n{'module':<20}{'killed':>8}{'total':>8}{'score':>9}")
    for module in sorted(total):
        score = killed[module] / total[module]
        print(f"{module:<20}{killed[module]:>8}{total[module]:>8}{score:>9.1%}")
    score = sum(killed.values()) / sum(total.values())
    print(f"{'all':<20}{sum(killed.values()):>8}{sum(total.values()):>8}{score:>9.1%}\n")

    listed = set(LISTED.findall(SURVIVORS.read_text())) if SURVIVORS.exists() else set()
    unlisted = sorted(set(survivors) - listed)
    for name in unlisted:
        reason = "no test ran it" if codes[name] in NO_TESTS_CODES else "survived"
        print(f"not listed in {SURVIVORS.name}: {name} ({reason}; `mutmut show {name}`)")
    stale = sorted(listed & set(codes) - set(survivors))
    for name in stale:
        print(f"listed in {SURVIVORS.name} but killed now: {name}")
    print(
        f"{len(survivors)} survivors, {len(unlisted)} of them unlisted; "
        f"mutation score {score:.1%} (at least {MINIMUM_SCORE:.0%} needed)"
    )
    return 0 if score >= MINIMUM_SCORE and not unlisted else 1


if __name__ == "__main__":
    sys.exit(main())
