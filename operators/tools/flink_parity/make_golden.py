"""Writes operators/src/match_recognize/flink_quantifiers.txt from cases_q.json and out_q.json."""
import json
o = json.load(open('out_q.json'))
cases = json.load(open('cases_q.json'))
lines = [
    "# Golden rows from Apache Flink 2.2 for every MATCH_RECOGNIZE quantifier,",
    "# greedy and reluctant, under every skip strategy; read by",
    "# flink_quantifiers.rs, written by operators/tools/flink_parity/make_golden.py.",
    "# `case PATTERN | SKIP` starts a case; its rows follow in order, or",
    "# `error TEXT` (Weir's error contains TEXT) or `flink-rejects`.",
    "prices " + ",".join(str(r[2]) for r in cases[0]["rows"]),
]
for c in cases:
    name = c["name"]; _, pat, sk = name.split("|")
    lines.append(f"case {pat} | {sk}")
    v = o[name]
    if isinstance(v, str):
        if "No such element" in v:
            lines.append("error no row of the match is mapped to")
        elif "first element of a match" in v:
            lines.append("error cannot skip to the first row")
        elif "preceded by greedy" in v:
            lines.append("error cannot follow the greedy variable")
        elif "from should be a positive" in v:
            lines.append("flink-rejects")
        else:
            raise Exception(v)
    else:
        lines.extend(v)
open('operators/src/match_recognize/flink_quantifiers.txt', 'w').write("\n".join(lines) + "\n")
