"""Runs MATCH_RECOGNIZE cases on Flink (PyFlink 2.2, Java 17) and prints canonical rows.

Usage: python run_flink.py cases.json out.json
Each case: {"name", "schema", "rows", "query" (reads table T), "delay" (watermark delay, s)}.
Timestamps print as HH:MM:SS, NULL as null: the format of the Rust tests.
"""
import sys, json, os, tempfile, datetime
from pyflink.table import EnvironmentSettings, TableEnvironment
cases = json.load(open(sys.argv[1]))
env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
env.get_config().set("parallelism.default", "1")
def canon(x):
    if x is None: return "null"
    if isinstance(x, datetime.datetime): return x.strftime("%H:%M:%S")
    return str(x)
out = {}
for i, c in enumerate(cases):
    d = tempfile.mkdtemp()
    with open(os.path.join(d, "data.csv"), "w") as f:
        for r in c["rows"]:
            f.write(",".join(str(x) for x in r) + "\n")
    t = f"T{i}"
    env.execute_sql(f"CREATE TABLE {t} ({c['schema']}, WATERMARK FOR rowtime AS rowtime - INTERVAL '{c.get('delay','0')}' SECOND) WITH ('connector'='filesystem','path'='{d}','format'='csv')")
    q = c["query"].replace(" T ", f" {t} ")
    try:
        res = env.execute_sql(q)
        rows = []
        with res.collect() as it:
            for r in it:
                rows.append(",".join(canon(x) for x in r))
        out[c["name"]] = rows
    except Exception as e:
        msg = str(e)
        # find the root cause line
        lines = [l for l in msg.split("\n") if "Exception" in l]
        out[c["name"]] = "ERROR: " + (lines[-1] if lines else msg.split("\n")[0])[:400]
    print(c["name"], json.dumps(out[c["name"]]), flush=True)
json.dump(out, open(sys.argv[2], "w"), indent=1)
