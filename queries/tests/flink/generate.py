#!/usr/bin/env python3
"""Generates Weir's Flink-checked golden files: runs every case file
queries/tests/flink/<case>.sql on Apache Flink (PyFlink) and writes
queries/tests/slt/flink_<case>.slt with Flink's rows as the expected output.

Run it from the workspace root (/work/main):

    /root/.cache/flink-venv/bin/python queries/tests/flink/generate.py [CASE ...]

The venv has `pip install apache-flink==2.2.0`; Java 17 (java and javac) must
be on PATH. With CASE names (e.g. `tumble hop`) only those cases are run.
`--verify-two-phase` also runs each query with Flink's default aggregation
plan (local/global two-phase) and fails if its rows differ.

CI does not run this script: the generated .slt files are committed, and
`cargo test -p weir-queries --test golden` runs them against Weir.

Case files
----------
Statements are separated by `;`. `--` comment lines before a statement are
copied into the .slt as `#` comments; the comment block at the top of the file
(up to the first blank line) is the file's description. Statements are
`CREATE ...` (DDL) or queries (`SELECT ...`); `SET 'key' = 'value'` is passed
to Flink's table config. Write the SQL so that Flink accepts it (`dateTime`
is a reserved word in Flink: quote it with backticks).

How Flink runs each case
------------------------
One TableEnvironment per case file, STREAMING mode, parallelism 1, UTC,
`pipeline.auto-watermark-interval` = 0. With interval 0, Flink's
WatermarkAssignerOperator (flink-table-runtime 2.2.0, processElement) emits a
watermark right after every row that raises it (it emits when
`currentWatermark - lastWatermark > watermarkInterval`, and registers no
periodic timer), so the watermark advances after every row, as Weir does with
`'batch.size' = '1'`. The filesystem source is bounded: at end of input Flink
emits the maximum watermark, which fires every open window.

Aggregations run with `table.optimizer.agg-phase-strategy` = ONE_PHASE, so
that Flink's `numLateRecordsDropped` counts input rows (in the default
two-phase plan the global operator counts pre-aggregated records). The rows
are the same either way (`--verify-two-phase` checks it).

Paths and Weir-only options
---------------------------
`'path' = 'tests/data/x.json'` is relative to the queries/ crate (as in all
of Weir's .slt files); Flink gets the absolute path. In the .slt output every
filesystem table gets `'batch.size' = '1'` (Weir's option, unknown to Flink),
and the file starts with `SET 'parallelism.default' = '1'`.

Output
------
`query <types> rowsort` with one letter per column (I integer, R float or
decimal, T anything else), rows sorted, values separated by single spaces,
NULL as `NULL`, timestamps `YYYY-MM-DD HH:MM:SS.fff`, floats as Rust's `{:?}`
prints an f64, decimals with their scale. After each query, `SHOW LATE ROWS`
expects the sum of Flink's `numLateRecordsDropped` counters of that job, read
through a tiny metric reporter (compiled here with javac, loaded into
PyFlink's JVM through HADOOP_CLASSPATH, which PyFlink appends to its
classpath) that keeps every such counter per job id.
"""

import datetime
import decimal
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent  # queries/tests/flink
QUERIES = HERE.parent.parent  # the queries/ crate: base of relative paths
SLT_DIR = HERE.parent / "slt"

REPORTER_CLASS = "WeirLateRecordsReporter"
REPORTER_SOURCE = r"""
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import org.apache.flink.metrics.Counter;
import org.apache.flink.metrics.Metric;
import org.apache.flink.metrics.MetricConfig;
import org.apache.flink.metrics.MetricGroup;
import org.apache.flink.metrics.reporter.MetricReporter;
import org.apache.flink.metrics.reporter.MetricReporterFactory;

/** Keeps every numLateRecordsDropped counter, with its job id, for generate.py. */
public class WeirLateRecordsReporter implements MetricReporter, MetricReporterFactory {
    private static final List<Object[]> COUNTERS = new ArrayList<>();

    @Override
    public MetricReporter createMetricReporter(Properties properties) {
        return new WeirLateRecordsReporter();
    }

    @Override
    public void open(MetricConfig config) {}

    @Override
    public void close() {}

    @Override
    public void notifyOfAddedMetric(Metric metric, String name, MetricGroup group) {
        if (name.equals("numLateRecordsDropped") && metric instanceof Counter) {
            String job = group.getAllVariables().get("<job_id>");
            synchronized (COUNTERS) {
                COUNTERS.add(new Object[] {job, metric});
            }
        }
    }

    @Override
    public void notifyOfRemovedMetric(Metric metric, String name, MetricGroup group) {}

    /** Sum of the job's counters; -1 when the job registered none. */
    public static long total(String jobId) {
        long sum = -1;
        synchronized (COUNTERS) {
            for (Object[] e : COUNTERS) {
                if (jobId.equals(e[0])) {
                    sum = Math.max(sum, 0) + ((Counter) e[1]).getCount();
                }
            }
        }
        return sum;
    }
}
"""


def fail(msg):
    sys.exit("generate.py: " + msg)


# ---------------------------------------------------------------- case files


def split_statements(text):
    """Splits on `;` outside quotes and `--` comments; returns raw chunks."""
    chunks, cur, i, n = [], [], 0, len(text)
    quote = None
    while i < n:
        c = text[i]
        if quote:
            cur.append(c)
            if c == quote:
                quote = None
        elif c in "'`\"":
            quote = c
            cur.append(c)
        elif text.startswith("--", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            cur.append(text[i:j])
            i = j
            continue
        elif c == ";":
            chunks.append("".join(cur))
            cur = []
        else:
            cur.append(c)
        i += 1
    if "".join(cur).strip():
        # Only comments may follow the last `;`.
        rest = [l for l in "".join(cur).splitlines() if l.strip() and not l.strip().startswith("--")]
        if rest:
            fail("statement without a terminating ';': " + " ".join(rest)[:80])
    return chunks


def parse_case(path):
    """Returns (header comment lines, [(comment lines, sql)])."""
    text = path.read_text()
    lines = text.splitlines()
    header = []
    k = 0
    while k < len(lines) and lines[k].strip().startswith("--"):
        header.append(lines[k].strip()[2:].removeprefix(" "))
        k += 1
    body = "\n".join(lines[k:])
    statements = []
    for chunk in split_statements(body):
        comments, sql = [], []
        for line in chunk.splitlines():
            s = line.strip()
            if not sql and s.startswith("--"):
                comments.append(s[2:].removeprefix(" "))
            elif not sql and not s:
                comments = []  # a blank line detaches comments above it
            elif s:  # sqllogictest records end at a blank line
                sql.append(line.rstrip())
        if sql:
            statements.append((comments, "\n".join(sql)))
    return header, statements


PATH_OPTION = re.compile(r"('path'\s*=\s*')([^']*)(')")


def flink_sql(sql):
    """The statement as Flink runs it: relative 'path' options made absolute."""

    def absolute(m):
        p = Path(m.group(2))
        if not p.is_absolute():
            p = QUERIES / p
            if not p.exists():
                fail(f"data file {p} does not exist")
        return m.group(1) + str(p) + m.group(3)

    return PATH_OPTION.sub(absolute, sql)


def weir_sql(sql):
    """The statement as the .slt has it: filesystem tables get 'batch.size' = '1'."""
    if not re.match(r"\s*CREATE\s+TABLE", sql, re.I):
        return sql
    if not re.search(r"'connector'\s*=\s*'filesystem'", sql):
        return sql
    if "'batch.size'" in sql:
        return sql
    end = sql.rstrip().rfind(")")
    head = sql[:end].rstrip()
    option = re.search(r"\n([ \t]*)'connector'", sql)
    if option:  # options one a line: keep the style
        return f"{head},\n{option.group(1)}'batch.size' = '1'\n{sql[end:]}"
    return f"{head}, 'batch.size' = '1'{sql[end:]}"


SET_STATEMENT = re.compile(r"\s*SET\s+'([^']+)'\s*=\s*'([^']*)'\s*$", re.I | re.S)


# ---------------------------------------------------------------- formatting


def rust_f64(x):
    """Formats a float as Rust's `{:?}` does for f64."""
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    s = repr(float(x))  # shortest round-trip, like Rust
    if "e" in s:  # Python: 1e-05, 1.5e+16; Rust: 1e-5, 1.5e16
        mantissa, exp = s.split("e")
        s = f"{mantissa}e{int(exp)}"
    return s


def format_value(v):
    if v is None:
        return "NULL"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return rust_f64(v)
    if isinstance(v, decimal.Decimal):
        return format(v, "f")
    if isinstance(v, datetime.datetime):
        return v.strftime("%Y-%m-%d %H:%M:%S.") + f"{v.microsecond // 1000:03d}"
    if isinstance(v, (datetime.date, datetime.time)):
        return v.isoformat()
    s = str(v)
    if s == "" or s != s.strip() or "\n" in s:
        fail(f"value {s!r} cannot be written as a sqllogictest value")
    return s


def type_letter(data_type):
    from pyflink.table import types as t

    if isinstance(data_type, (t.TinyIntType, t.SmallIntType, t.IntType, t.BigIntType)):
        return "I"
    if isinstance(data_type, (t.FloatType, t.DoubleType, t.DecimalType)):
        return "R"
    return "T"


# ---------------------------------------------------------------- Flink


def compile_reporter(workdir):
    src = Path(workdir) / f"{REPORTER_CLASS}.java"
    src.write_text(REPORTER_SOURCE)
    services = Path(workdir) / "META-INF" / "services"
    services.mkdir(parents=True)
    (services / "org.apache.flink.metrics.reporter.MetricReporterFactory").write_text(
        REPORTER_CLASS + "\n"
    )
    import pyflink

    lib = Path(pyflink.__file__).parent / "lib"
    jars = sorted(lib.glob("flink-dist-*.jar"))
    if not jars:
        fail(f"no flink-dist jar in {lib}")
    try:
        subprocess.run(
            ["javac", "--release", "17", "-cp", str(jars[0]), "-d", workdir, str(src)],
            check=True,
        )
    except (OSError, subprocess.CalledProcessError) as e:
        fail(f"cannot compile the late-rows reporter with javac: {e}")


class Flink:
    def __init__(self, agg_phase):
        from pyflink.common import Configuration
        from pyflink.table import EnvironmentSettings, TableEnvironment
        from pyflink.java_gateway import get_gateway

        self.Configuration = Configuration
        self.EnvironmentSettings = EnvironmentSettings
        self.TableEnvironment = TableEnvironment
        self.agg_phase = agg_phase
        self.gateway = get_gateway()
        self.env = None

    def new_environment(self):
        conf = self.Configuration()
        conf.set_string(
            "metrics.reporter.weirlate.factory.class", REPORTER_CLASS
        )
        settings = (
            self.EnvironmentSettings.new_instance()
            .in_streaming_mode()
            .with_configuration(conf)
            .build()
        )
        env = self.TableEnvironment.create(settings)
        c = env.get_config()
        c.set("parallelism.default", "1")
        c.set("pipeline.auto-watermark-interval", "0")
        c.set("table.local-time-zone", "UTC")
        c.set("table.optimizer.agg-phase-strategy", self.agg_phase)
        self.env = env

    def statement(self, sql):
        m = SET_STATEMENT.match(sql)
        if m:
            self.env.get_config().set(m.group(1), m.group(2))
        else:
            self.env.execute_sql(flink_sql(sql)).wait()

    def query(self, sql):
        from pyflink.common import RowKind

        result = self.env.execute_sql(flink_sql(sql))
        types = result.get_table_schema().get_field_data_types()
        rows = []
        with result.collect() as results:
            for row in results:
                if row.get_row_kind() != RowKind.INSERT:
                    fail(f"Flink emitted {row.get_row_kind()} for {row} (only inserts are supported)")
                rows.append([format_value(v) for v in row])
        result.wait()
        job = str(result.get_job_client().get_job_id())
        late = getattr(self.gateway.jvm, REPORTER_CLASS).total(job)
        letters = "".join(type_letter(t) for t in types)
        return letters, sorted(rows), max(late, 0)


def generate(case, flink, version, verify):
    header, statements = parse_case(case)
    name = case.stem
    out = [
        f"# generated by queries/tests/flink/generate.py from Flink {version}; do not edit",
        f"# source: queries/tests/flink/{case.name}",
    ]
    if header:
        out.append("#")
        out += [f"# {l}".rstrip() for l in header]
    out += ["", "statement ok", "SET 'parallelism.default' = '1'", ""]
    flink.new_environment()
    checker = None
    if verify:
        checker = verify
        checker.new_environment()
    queries = 0
    for comments, sql in statements:
        out += [f"# {l}".rstrip() for l in comments]
        head = sql.lstrip().upper()
        if head.startswith("CREATE") or head.startswith("SET"):
            flink.statement(sql)
            if checker:
                checker.statement(sql)
            out += ["statement ok", weir_sql(sql), ""]
            continue
        letters, rows, late = flink.query(sql)
        if checker:
            _, rows2, _ = checker.query(sql)
            if rows2 != rows:
                fail(f"{case.name}: two-phase rows differ:\n{rows}\n{rows2}")
        queries += 1
        out += [f"query {letters} rowsort", sql, "----"]
        out += [" ".join(r) for r in rows]
        out += ["", "query I", "SHOW LATE ROWS", "----", str(late), ""]
        print(f"  {name} query {queries}: {len(rows)} rows, {late} late", flush=True)
    target = SLT_DIR / f"flink_{name}.slt"
    target.write_text("\n".join(out).rstrip("\n") + "\n")
    print(f"wrote {target.relative_to(QUERIES.parent) if QUERIES.parent in target.parents else target}")


def main(argv):
    verify = "--verify-two-phase" in argv
    names = [a for a in argv if not a.startswith("--")]
    cases = sorted(HERE.glob("*.sql"))
    if names:
        wanted = {n.removesuffix(".sql") for n in names}
        unknown = wanted - {c.stem for c in cases}
        if unknown:
            fail(f"no case file for {sorted(unknown)}")
        cases = [c for c in cases if c.stem in wanted]
    if not cases:
        fail(f"no case files in {HERE}")

    workdir = tempfile.mkdtemp(prefix="weir-flink-reporter-")
    compile_reporter(workdir)
    # PyFlink appends HADOOP_CLASSPATH to the classpath of the JVM it starts
    # (pyflink_gateway_server.py); the local MiniCluster runs in that JVM and
    # finds the reporter factory through META-INF/services.
    old = os.environ.get("HADOOP_CLASSPATH")
    os.environ["HADOOP_CLASSPATH"] = workdir + (os.pathsep + old if old else "")

    from pyflink.version import __version__ as version

    try:
        flink = Flink("ONE_PHASE")
        checker = Flink("AUTO") if verify else None
        for case in cases:
            print(f"{case.name}:", flush=True)
            generate(case, flink, version, checker)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1:])
