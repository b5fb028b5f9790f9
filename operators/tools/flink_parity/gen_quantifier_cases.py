"""Generates the quantifier x skip-strategy cases (cases_q.json) for run_flink.py."""
import json
T = "symbol STRING, rowtime TIMESTAMP(3), price BIGINT, tax BIGINT"
def ts(sec):
    return "2018-09-17 %02d:%02d:%02d" % (10 + sec // 3600, (sec // 60) % 60, sec % 60)
cases = []
P = [1,2,4,2,4,3,1,4,4,3,1,2,2,2,3,1,3,1,4,3,1,2,4,4,4,3,9,1,3,4,1,2,2,9]
qrows = [["S", ts(i), p, 0] for i, p in enumerate(P)]
patterns = ['A B* C','A B*? C','A B+ C','A B+? C','A B? C','A B{2} C','A B{2,} C','A B{2,}? C',
            'A B{1,2} C','A B{1,2}? C','A B{,2} C','A B{,2}? C','A B{0,} C','A B+?','A B*?','A B{2,3}?',
            'B* C','B+ C','A? B+ C','A B* C* D','A B*? C* D','A B* C+? D','A B{1,3} C{1,2} D','A? B? C']
skips = [("past","AFTER MATCH SKIP PAST LAST ROW"),("next","AFTER MATCH SKIP TO NEXT ROW"),
         ("lastB","AFTER MATCH SKIP TO LAST B"),("firstC","AFTER MATCH SKIP TO FIRST C")]
for p in patterns:
    for sk, skq in skips:
        if sk == "firstC" and "C" not in p: continue
        q = ("SELECT * FROM T MATCH_RECOGNIZE (PARTITION BY symbol ORDER BY rowtime "
             "MEASURES FIRST(A.rowtime) AS ta, COUNT(B.price) AS nb, COUNT(C.price) AS nc, LAST(rowtime) AS te "
             f"ONE ROW PER MATCH {skq} PATTERN ({p}) "
             "DEFINE A AS A.price = 1, B AS B.price IN (2, 4), C AS C.price IN (3, 4), D AS D.price IN (3, 9))")
        if 'D' not in p:
            q = q.replace(", D AS D.price IN (3, 9)", "")
        cases.append({"name": f"q|{p}|{sk}", "schema": T, "rows": qrows, "query": q})
json.dump(cases, open("cases_q.json", "w"))
print(len(cases))
