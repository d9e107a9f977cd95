#!/usr/bin/env bash
# Benchmark: keyfill render vs GNU envsubst on the same content.
#
# Prints figures only: for each case the median of paired keyfill/envsubst
# wall-time ratios (with their interquartile range), both medians, keyfill's
# peak RSS as a multiple of the input, the target beside each figure, and the
# machine's load average at start and end. It is not a test: the only failure
# exit is when keyfill errors on (or fails to substitute) a generated input, so
# an error path is never timed. See benches/README.md for the cases.
#
# Usage: bash benches/compare_envsubst.sh          (full run, about 3 minutes on 2 cores)
#        QUICK=1 bash benches/compare_envsubst.sh  (smoke test, under a minute)
# Env knobs (optional; QUICK=1 changes the defaults shown in brackets):
#   N_TINY    pairs for the tiny config          201 [21]
#   N_SMALL   pairs for the 1 MiB config          41  [7]
#   N_LARGE   pairs for each large config         15  [3]
#   N_CORPUS  pairs per real-world corpus file    41  [7]
#   RSS_RUNS  untimed /usr/bin/time runs per case  2  [1]
#   SIZE_MB_SMALL (1), SIZE_MB_LARGE (50 [10])
#   CORPUS_MIN_BYTES (60000), CORPUS_MAX_BYTES (300000): corpus file sizes used
#   CORPUS_REFS (3): plain scalar values turned into references per corpus file
#   BENCH_SEED (20240601): generator and pair-order seed
#   KEYFILL: the binary to time (default: target/release/keyfill, built first)
set -euo pipefail

START_SECONDS=$SECONDS
LOAD_START="$(cut -d' ' -f1-3 /proc/loadavg)"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CORPUS="$ROOT/../shared/realworld-corpus"
if [ "${QUICK:-0}" = 1 ]; then
  q_tiny=21 q_small=7 q_large=3 q_corpus=7 q_rss=1 q_large_mb=10
else
  q_tiny=201 q_small=41 q_large=15 q_corpus=41 q_rss=2 q_large_mb=50
fi
N_TINY="${N_TINY:-$q_tiny}"
N_SMALL="${N_SMALL:-$q_small}"
N_LARGE="${N_LARGE:-$q_large}"
N_CORPUS="${N_CORPUS:-$q_corpus}"
RSS_RUNS="${RSS_RUNS:-$q_rss}"
SIZE_MB_SMALL="${SIZE_MB_SMALL:-1}"
SIZE_MB_LARGE="${SIZE_MB_LARGE:-$q_large_mb}"
CORPUS_MIN_BYTES="${CORPUS_MIN_BYTES:-60000}"
CORPUS_MAX_BYTES="${CORPUS_MAX_BYTES:-300000}"
CORPUS_REFS="${CORPUS_REFS:-3}"
BENCH_SEED="${BENCH_SEED:-20240601}"

for tool in python3 envsubst cargo; do
  command -v "$tool" >/dev/null 2>&1 || { echo "missing required tool: $tool" >&2; exit 1; }
done
python3 -c 'import yaml' 2>/dev/null || { echo "missing python3 module: yaml (PyYAML), used to pick corpus scalars" >&2; exit 1; }
[ -f "$CORPUS/MANIFEST.tsv" ] || { echo "real-world corpus not found at $CORPUS" >&2; exit 1; }

echo "== load average at start: $LOAD_START ($(nproc) cores)"
echo "== building keyfill (release)"
(cd "$ROOT" && cargo build --release --quiet)
KEYFILL="${KEYFILL:-$ROOT/target/release/keyfill}"
[ -x "$KEYFILL" ] || { echo "binary not found: $KEYFILL" >&2; exit 1; }

WORK="$(mktemp -d "${TMPDIR:-/tmp}/keyfill-bench.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

# --------------------------------------------------------------------------
# 1. Generate inputs and $WORK/cases.json, one entry per timed input:
#    name, case, keyfill argv tail, envsubst input, secret names it must show.
#    secrets.env holds BENCH_S0..BENCH_S999 (24-char alphanumerics, seeded).
# --------------------------------------------------------------------------
echo "== generating inputs in $WORK"
python3 - "$WORK" "$SIZE_MB_SMALL" "$SIZE_MB_LARGE" "$CORPUS" "$ROOT/tests/corpus-refusals.tsv" \
  "$CORPUS_MIN_BYTES" "$CORPUS_MAX_BYTES" "$CORPUS_REFS" "$BENCH_SEED" <<'PY'
import json, os, random, string, sys
import yaml

(work, mb_small, mb_large, corpus, refusals_tsv,
 cmin, cmax, crefs, seed) = sys.argv[1:]
mb_small, mb_large = float(mb_small), float(mb_large)
cmin, cmax, crefs, seed = int(cmin), int(cmax), int(crefs), int(seed)
NREFS = 1000
rng = random.Random(seed)
alnum = string.ascii_letters + string.digits
values = ["".join(rng.choice(alnum) for _ in range(24)) for _ in range(NREFS)]

with open(os.path.join(work, "secrets.env"), "w") as f:
    for i, v in enumerate(values):
        f.write(f"BENCH_S{i}={v}\n")

cases = []

SLOTS_PER_BLOCK = 3
REGIONS = ["eu-west-1", "us-east-1", "ap-south-1", "eu-central-1"]
TIERS = ["frontend", "backend", "worker", "cache"]

def ref_kf(n):  return f"$<S{n}>"
def ref_es(n):  return f"${{BENCH_S{n}}}"

def block(i, slot_refs, ref):
    """One k8s/app-style block. slot_refs: secret index or None for each of 3 slots."""
    r = random.Random(i)  # deterministic per block
    region = REGIONS[i % len(REGIONS)]
    tier = TIERS[i % len(TIERS)]
    s0, s1, s2 = slot_refs
    pw   = ref(s0) if s0 is not None else f"placeholder-{i}"
    url  = (f'"postgres://app:{ref(s1)}@db-{i}.internal:5432/app?sslmode=require"'
            if s1 is not None else f'"postgres://app@db-{i}.internal:5432/app?sslmode=require"')
    auth = f"'Bearer {ref(s2)}'" if s2 is not None else "'Bearer anonymous'"
    replicas = 1 + r.randrange(5)
    port = 8000 + r.randrange(1000)
    mem = [128, 256, 512, 1024][r.randrange(4)]
    return f"""\
# ---------------------------------------------------------------------------
# svc-{i}: {tier} service in {region}; owned by team-{i % 17}
# ---------------------------------------------------------------------------
service_{i}:
  apiVersion: apps/v1
  kind: Deployment
  metadata:
    name: "svc-{i}"
    namespace: team-{i % 17}
    labels:
      app.kubernetes.io/name: svc-{i}
      app.kubernetes.io/part-of: 'platform'
      app.kubernetes.io/version: "1.{i % 40}.{i % 7}"
      tier: {tier}
    annotations:
      description: "Handles requests for {region}; see runbook page {i % 300} (it's fine)"
      prometheus.io/scrape: "true"
      prometheus.io/port: "{port}"
  spec:
    replicas: {replicas}
    revisionHistoryLimit: 10
    selector:
      matchLabels: {{app: svc-{i}, tier: {tier}}}
    strategy:
      type: RollingUpdate
      rollingUpdate: {{maxSurge: 25%, maxUnavailable: 0}}
    template:
      metadata:
        labels: {{app: svc-{i}, tier: {tier}}}
      spec:
        serviceAccountName: svc-{i}-sa
        containers:
          - name: app
            image: "registry.example.com/team-{i % 17}/svc-{i}:1.{i % 40}.{i % 7}"
            imagePullPolicy: IfNotPresent
            args: ["--port", "{port}", "--log-level=info", '--region={region}']
            ports:
              - containerPort: {port}
                protocol: TCP
                name: http
            env:
              - name: LOG_LEVEL
                value: info
              - name: DB_PASSWORD
                value: {pw}   # injected at deploy time
              - name: DATABASE_URL
                value: {url}
              - name: FEATURE_FLAGS
                value: "search,checkout,beta-ui"
            resources:
              requests: {{cpu: 100m, memory: {mem // 2}Mi}}
              limits: {{cpu: 500m, memory: {mem}Mi}}
            readinessProbe:
              httpGet: {{path: /healthz, port: {port}}}
              initialDelaySeconds: 5
              periodSeconds: 10
        volumes:
          - name: config
            configMap: {{name: svc-{i}-config}}
  http:
    timeout_ms: {1000 + (i % 9) * 250}
    retries: 3
    headers:
      Authorization: {auth}
      X-Request-Source: "svc-{i}"
    upstreams:
      - host: upstream-{i % 50}.internal
        port: 443
        tls: true
      - host: fallback-{i % 11}.internal
        port: 443
        tls: false
  config.toml: |
    # rendered as a file inside the container
    [server]
    listen = "0.0.0.0:{port}"
    workers = {2 + i % 6}
    [cache]
    ttl = "{30 + i % 90}s"
  enabled: {"true" if i % 5 else "false"}
  weight: {0.1 + (i % 10) / 10:.1f}
  owners: [alice@example.com, bob@example.com, 'ops-team']

"""

def secrets_block(n=NREFS):
    # No comment/blank line around the block: keyfill drops exactly the block,
    # so its output can be compared byte-for-byte with envsubst's.
    lines = ["secrets:"]
    lines += [f"  S{i}: {{ env: BENCH_S{i} }}" for i in range(n)]
    return "\n".join(lines) + "\n"

def add_case(name, case, kf_name, es_name, nsecrets, kf_extra=()):
    cases.append({"name": name, "case": case,
                  "kf_args": list(kf_extra) + [os.path.join(work, kf_name)],
                  "es_input": os.path.join(work, es_name),
                  "secrets": [f"BENCH_S{i}" for i in range(nsecrets)],
                  "bytes": os.path.getsize(os.path.join(work, kf_name))})

def generate_dense(name, case, target_bytes):
    """Event-dense: the k8s/app blocks above, 1,000 references spread evenly."""
    sample = len(block(0, (None, None, None), ref_kf).encode())
    nblocks = max(1, round((target_bytes - 30 * NREFS) / sample))
    nslots = nblocks * SLOTS_PER_BLOCK
    if nslots < NREFS:
        sys.exit(f"{name}: too few slots ({nslots}) for {NREFS} references")
    # ref n goes into global slot floor(n * nslots / NREFS): evenly spread, distinct.
    slot_of = {(n * nslots) // NREFS: n for n in range(NREFS)}
    with open(os.path.join(work, f"{name}.keyfill.yaml"), "w") as kf, \
         open(os.path.join(work, f"{name}.envsubst.yaml"), "w") as es:
        kf.write(secrets_block())
        for b in range(nblocks):
            refs = tuple(slot_of.get(b * SLOTS_PER_BLOCK + k) for k in range(SLOTS_PER_BLOCK))
            kf.write(block(b, refs, ref_kf))
            es.write(block(b, refs, ref_es))
    add_case(name, case, f"{name}.keyfill.yaml", f"{name}.envsubst.yaml", NREFS)

def generate_flat(name, case, target_bytes):
    """Flat: top-level `key: value` lines only, 1,000 of them are references."""
    line = lambda i, v: f"setting_{i:07d}: value-{(i * 7919) % 1000003:07d}-{v}\n"
    nlines = max(NREFS, target_bytes // len(line(0, "abcdefgh")))
    ref_at = {(n * nlines) // NREFS: n for n in range(NREFS)}
    words = ["".join(random.Random(i).choice(string.ascii_lowercase) for _ in range(8))
             for i in range(64)]
    with open(os.path.join(work, f"{name}.keyfill.yaml"), "w") as kf, \
         open(os.path.join(work, f"{name}.envsubst.yaml"), "w") as es:
        kf.write(secrets_block())
        chunk_kf, chunk_es = [], []
        for i in range(nlines):
            n = ref_at.get(i)
            if n is None:
                l = line(i, words[i % 64])
                chunk_kf.append(l); chunk_es.append(l)
            else:
                chunk_kf.append(f"setting_{i:07d}: {ref_kf(n)}\n")
                chunk_es.append(f"setting_{i:07d}: {ref_es(n)}\n")
            if len(chunk_kf) >= 65536:
                kf.write("".join(chunk_kf)); es.write("".join(chunk_es))
                chunk_kf, chunk_es = [], []
        kf.write("".join(chunk_kf)); es.write("".join(chunk_es))
    add_case(name, case, f"{name}.keyfill.yaml", f"{name}.envsubst.yaml", NREFS)

generate_flat("flat", "flat", int(mb_large * 1024 * 1024))
generate_dense("dense", "dense", int(mb_large * 1024 * 1024))
generate_dense("1mb", "1mb", int(mb_small * 1024 * 1024))

# Tiny env-only config, for start-up cost: 2 env secrets, a few lines.
with open(os.path.join(work, "tiny.keyfill.yaml"), "w") as f:
    f.write("secrets:\n  S0: { env: BENCH_S0 }\n  S1: { env: BENCH_S1 }\n"
            "app:\n  password: $<S0>\n  url: \"https://h.example.com/?t=$<S1>\"\n")
with open(os.path.join(work, "tiny.envsubst.yaml"), "w") as f:
    f.write("app:\n  password: ${BENCH_S0}\n  url: \"https://h.example.com/?t=${BENCH_S1}\"\n")
add_case("tiny", "tiny", "tiny.keyfill.yaml", "tiny.envsubst.yaml", 2)

# Real-world corpus: every file of the chosen size that keyfill does not refuse
# (tests/corpus-refusals.tsv; byte-identical rendering is checked again before
# timing). In each, CORPUS_REFS plain scalar values of block mappings, chosen at
# random, become `$<Sn>` (keyfill) / `${BENCH_Sn}` (envsubst). The declarations
# come from a --secrets catalogue, so the file's own documents stay as they are.
refused = set()
for l in open(refusals_tsv, encoding="utf-8"):
    if l.strip() and not l.startswith("#"):
        refused.add(l.split("\t", 1)[0])
with open(os.path.join(work, "corpus-secrets.yaml"), "w") as f:
    f.write(secrets_block(crefs))
manifest = [l.rstrip("\n").split("\t") for l in open(os.path.join(corpus, "MANIFEST.tsv"), encoding="utf-8")]
col = {h: i for i, h in enumerate(manifest[0])}
picked = sorted((r[col["corpus_path"]] for r in manifest[1:]
                 if r and cmin <= int(r[col["bytes"]]) <= cmax), key=str)
notes = []

def plain_values(text):
    """(start, end) char offsets of single-line plain scalars that are values of
    block mappings, carry no anchor or tag, and are written exactly as their value."""
    out = []
    def walk(node):
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                walk(k); walk(v)
                if (not node.flow_style and isinstance(v, yaml.ScalarNode) and v.style is None
                        and v.value and v.start_mark.line == v.end_mark.line
                        and text[v.start_mark.index:v.end_mark.index] == v.value
                        and "$" not in v.value):
                    out.append((v.start_mark.index, v.end_mark.index))
        elif isinstance(node, yaml.SequenceNode):
            for v in node.value:
                walk(v)
    for doc in yaml.compose_all(text, Loader=yaml.SafeLoader):
        if doc is not None:
            walk(doc)
    return out

for k, rel in enumerate(picked):
    if rel in refused:
        notes.append(f"{rel}: skipped, refused today (tests/corpus-refusals.tsv)")
        continue
    text = open(os.path.join(corpus, rel), encoding="utf-8").read()
    try:
        spans = plain_values(text)
    except yaml.YAMLError as e:
        notes.append(f"{rel}: skipped, PyYAML cannot read it ({type(e).__name__})")
        continue
    if len(spans) < crefs:
        notes.append(f"{rel}: skipped, only {len(spans)} plain scalar values")
        continue
    chosen = sorted(random.Random(f"{seed}:{rel}").sample(spans, crefs), reverse=True)
    kf_text, es_text = text, text
    for n, (s, e) in zip(range(crefs - 1, -1, -1), chosen):   # from the end: offsets stay valid
        kf_text = kf_text[:s] + ref_kf(n) + kf_text[e:]
        es_text = es_text[:s] + ref_es(n) + es_text[e:]
    base = f"corpus{k}"
    with open(os.path.join(work, f"{base}.orig.yaml"), "w", encoding="utf-8") as f:
        f.write(text)
    with open(os.path.join(work, f"{base}.keyfill.yaml"), "w", encoding="utf-8") as f:
        f.write(kf_text)
    with open(os.path.join(work, f"{base}.envsubst.yaml"), "w", encoding="utf-8") as f:
        f.write(es_text)
    add_case(rel, "corpus", f"{base}.keyfill.yaml", f"{base}.envsubst.yaml", crefs,
             ["--secrets", os.path.join(work, "corpus-secrets.yaml")])
    cases[-1]["orig"] = os.path.join(work, f"{base}.orig.yaml")

json.dump({"cases": cases, "notes": notes,
           "corpus_range": [cmin, cmax], "corpus_candidates": len(picked)},
          open(os.path.join(work, "cases.json"), "w"), indent=1)
PY

# Export BENCH_S0..BENCH_S999 for both tools.
set -a
# shellcheck disable=SC1091
. "$WORK/secrets.env"
set +a

# --------------------------------------------------------------------------
# 2. Sanity check, then timing and peak RSS, in one python process.
# --------------------------------------------------------------------------
python3 - "$WORK" "$KEYFILL" "$N_TINY" "$N_SMALL" "$N_LARGE" "$N_CORPUS" "$RSS_RUNS" "$BENCH_SEED" <<'PY'
import json, os, random, statistics, subprocess, sys, time

work, keyfill = sys.argv[1], sys.argv[2]
n_tiny, n_small, n_large, n_corpus, rss_runs, seed = map(int, sys.argv[3:9])
meta = json.load(open(os.path.join(work, "cases.json")))
cases, notes = meta["cases"], meta["notes"]
devnull = open(os.devnull, "wb")
env_vals = dict(l.rstrip("\n").split("=", 1) for l in open(os.path.join(work, "secrets.env")))

# Targets of issue 11 (keyfill/envsubst, median paired ratio).
TARGET = {"flat": 2.0, "dense": 3.5, "1mb": 2.2, "tiny": 1.2, "corpus": 1.8}
PAIRS = {"flat": n_large, "dense": n_large, "1mb": n_small, "tiny": n_tiny, "corpus": n_corpus}
ORDER = ["flat", "dense", "1mb", "tiny", "corpus"]

def kf_argv(c, full=False):
    return [keyfill, "render"] + (["--verify", "full"] if full else []) + c["kf_args"]

# ---- sanity: keyfill exits 0 and substitutes everything, or we stop here.
print("== sanity check")
def describe_diff(kf, es):
    if kf == es:
        return "byte-identical"
    kl, el = kf.split(b"\n"), es.split(b"\n")
    if len(kl) != len(el):
        return f"differs (keyfill {len(kf)} B / {len(kl)} lines, envsubst {len(es)} B / {len(el)} lines)"
    diff = [(a, b) for a, b in zip(kl, el) if a != b]
    quoting = sum(1 for a, b in diff if a.replace(b"'", b"").replace(b'"', b"") ==
                  b.replace(b"'", b"").replace(b'"', b""))
    return f"{len(diff)} lines differ, {quoting} of them only by quoting"

kept = []
for c in cases:
    if c["case"] == "corpus":
        # The unmodified file must render byte-identical today, else it is not used.
        orig = open(c["orig"], "rb").read()
        p = subprocess.run([keyfill, "render", c["orig"]], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        if p.returncode != 0 or p.stdout != orig:
            notes.append(f"{c['name']}: skipped, not rendered byte-identical today (exit {p.returncode})")
            continue
        left_ok = orig.count(b"$<")
    else:
        left_ok = 0
    p = subprocess.run(kf_argv(c), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       stdin=subprocess.DEVNULL)
    found = sum(1 for s in c["secrets"] if env_vals[s].encode() in p.stdout)
    left = p.stdout.count(b"$<")
    if p.returncode != 0 or found != len(c["secrets"]) or left != left_ok:
        sys.stderr.write(f"keyfill failed on {c['name']} (exit {p.returncode}, "
                         f"{found}/{len(c['secrets'])} secret values in the output, "
                         f"{left} '$<' left); stderr:\n{p.stderr.decode(errors='replace')}\n")
        sys.exit(1)
    es = subprocess.run(["envsubst"], stdin=open(c["es_input"], "rb"),
                        stdout=subprocess.PIPE, check=True).stdout
    print(f"   {c['case']:>6} {c['name'][:60]:<60} exit 0, {found}/{len(c['secrets'])} "
          f"values, vs envsubst: {describe_diff(p.stdout, es)}")
    kept.append(c)
cases = kept
n_corpus_files = sum(1 for c in cases if c["case"] == "corpus")
print(f"   corpus: files of {meta['corpus_range'][0]}-{meta['corpus_range'][1]} bytes: "
      f"{meta['corpus_candidates']} in MANIFEST.tsv, {n_corpus_files} used")
for n in notes:
    print(f"   note: {n}")
if not any(c["case"] == "corpus" for c in cases):
    print(f"   note: no corpus file between {meta['corpus_range'][0]} and "
          f"{meta['corpus_range'][1]} bytes is usable; the corpus row is empty")

# `--verify full` (issue 11) is timed too once the binary accepts it.
tiny = next(c for c in cases if c["case"] == "tiny")
HAVE_FULL = subprocess.run(kf_argv(tiny, full=True), stdout=devnull, stderr=devnull,
                           stdin=subprocess.DEVNULL).returncode == 0

def run(argv, stdin_path=None):
    """Wall time of one run (fork+exec+exit), stdout to /dev/null."""
    fin = open(stdin_path, "rb") if stdin_path else subprocess.DEVNULL
    t0 = time.perf_counter()
    p = subprocess.run(argv, stdin=fin, stdout=devnull, stderr=subprocess.PIPE)
    dt = time.perf_counter() - t0
    if stdin_path:
        fin.close()
    if p.returncode != 0:
        sys.stderr.write(f"{argv[0]} exited {p.returncode}: {p.stderr.decode(errors='replace')}\n")
        sys.exit(1)
    return dt

# Peak RSS from separate, untimed runs: a child's ru_maxrss also counts the
# pre-exec high-water mark of the python that forked it (~15 MiB), while GNU
# time is a small C program whose own floor is < 1 MiB.
HAVE_GNU_TIME = os.access("/usr/bin/time", os.X_OK)

def peak_rss(argv):
    """Peak RSS in MiB of one run of argv (GNU time %M), or None without GNU time."""
    if not HAVE_GNU_TIME:
        return None
    p = subprocess.run(["/usr/bin/time", "-f", "%M"] + argv, stdin=subprocess.DEVNULL,
                       stdout=devnull, stderr=subprocess.PIPE)
    if p.returncode != 0:
        sys.stderr.write(f"peak_rss: {argv[0]} exited {p.returncode}: {p.stderr.decode(errors='replace')}\n")
        sys.exit(1)
    return int(p.stderr.decode().strip().splitlines()[-1]) / 1024.0

def quartiles(xs):
    if len(xs) < 2:
        return xs[0], xs[0]
    q = statistics.quantiles(xs, n=4, method="inclusive")
    return q[0], q[2]

order_rng = random.Random(seed)

def measure(c, n):
    """n pairs (triples with --verify full) in random order within each pair."""
    arms = {"kf": (kf_argv(c), None), "es": (["envsubst"], c["es_input"])}
    if HAVE_FULL:
        arms["full"] = (kf_argv(c, full=True), None)
    for argv, stdin in arms.values():      # one untimed warm-up each: page cache
        run(argv, stdin)
    t = {a: [] for a in arms}
    for _ in range(n):
        names = list(arms)
        order_rng.shuffle(names)
        for a in names:
            t[a].append(run(*arms[a]))
    r = {"kf": statistics.median(t["kf"]), "es": statistics.median(t["es"]),
         "ratios": [k / e for k, e in zip(t["kf"], t["es"])]}
    if HAVE_FULL:
        r["full_ratios"] = [f / e for f, e in zip(t["full"], t["es"])]
    rss = [peak_rss(kf_argv(c)) for _ in range(rss_runs)]
    r["rss"] = max(rss) if rss and rss[0] is not None else None
    return r

def fmt_t(s):
    return f"{s * 1000:.1f} ms" if s < 1 else f"{s:.2f} s"

print(f"== timing: paired runs, order randomised per pair, stdout -> /dev/null"
      f"{'; --verify full timed as a third arm' if HAVE_FULL else ''}")
rows = []
for case in ORDER:
    group = [c for c in cases if c["case"] == case]
    if not group:
        rows.append((case, None))
        continue
    res = []
    for c in group:
        r = measure(c, PAIRS[case])
        med = statistics.median(r["ratios"])
        q1, q3 = quartiles(r["ratios"])
        print(f"   {case:>6} {c['name'][:58]:<58} {c['bytes'] / 1048576:7.2f} MiB  "
              f"n={PAIRS[case]:<3} kf {fmt_t(r['kf']):>9}  es {fmt_t(r['es']):>9}  "
              f"kf/es {med:.2f}x [IQR {q1:.2f}-{q3:.2f}]", flush=True)
        res.append((c, r))
    rows.append((case, res))

# ---- the table
print()
print("== summary: today vs target (kf/es = median of per-pair keyfill/envsubst ratios;")
print("   corpus row: median over files of each file's median ratio, range = min-max over files)")
hdr = (f"{'case':<7} {'size':>10} {'pairs':>6} {'keyfill':>9} {'envsubst':>9} {'kf/es':>7} "
       f"{'IQR / range':>13} {'target':>7} {'verify full':>11} {'kf RSS':>9} {'RSS/input':>9} "
       f"{'(RSS-base)/in':>13}")
print(hdr)
print("-" * len(hdr))
# Base: the tiny config's peak RSS, keyfill's footprint with next to no input.
base = next((res[0][1]["rss"] for case, res in rows if case == "tiny" and res), None)
for case, res in rows:
    over_s = "-"
    if res is None:
        print(f"{case:<7} {'(no input)':>10}")
        continue
    if case == "corpus":
        per = [statistics.median(r["ratios"]) for _, r in res]
        ratio = statistics.median(per)
        spread = f"{min(per):.2f}-{max(per):.2f}"
        kf = statistics.median(r["kf"] for _, r in res)
        es = statistics.median(r["es"] for _, r in res)
        sizes = [c["bytes"] for c, _ in res]
        size = f"{len(res)}x{min(sizes) // 1000}-{max(sizes) // 1000}KB"
        full = (f"{statistics.median(statistics.median(r['full_ratios']) for _, r in res):.2f}x"
                if HAVE_FULL else "n/a*")
        rss = [r["rss"] for _, r in res]
        rss_s = f"{max(rss):.1f} MiB" if rss[0] is not None else "-"
        mult_s = "-"
    else:
        c, r = res[0]
        ratio = statistics.median(r["ratios"])
        q1, q3 = quartiles(r["ratios"])
        spread = f"{q1:.2f}-{q3:.2f}"
        kf, es = r["kf"], r["es"]
        mib = c["bytes"] / 1048576
        size = f"{mib:.2f} MiB" if mib >= 0.01 else f"{c['bytes']} B"
        full = f"{statistics.median(r['full_ratios']):.2f}x" if HAVE_FULL else "n/a*"
        rss_s = f"{r['rss']:.1f} MiB" if r["rss"] is not None else "-"
        mult_s = f"{r['rss'] / mib:.2f}x" if r["rss"] is not None and mib >= 0.5 else "-"
        if base is not None and mib >= 0.5:
            over_s = f"{(r['rss'] - base) / mib:.2f}x"
    n = PAIRS[case]
    print(f"{case:<7} {size:>10} {n:>6} {fmt_t(kf):>9} {fmt_t(es):>9} {ratio:6.2f}x "
          f"{spread:>13} {'<=' + format(TARGET[case], '.1f') + 'x':>7} {full:>11} {rss_s:>9} {mult_s:>9} {over_s:>13}")
print("targets: kf/es as above; peak RSS <= 1.1x the input plus a few MiB (large inputs);")
print("   base = the tiny config's peak RSS" + (f" ({base:.1f} MiB)" if base is not None else ""))
if not HAVE_FULL:
    print("* verify full: this keyfill has no `--verify full` flag yet; the column is filled")
    print("  (a third arm in each randomised pair) once `render --verify full` exits 0.")
print("size = keyfill input (with its secrets block); RSS = max of "
      f"{rss_runs} untimed run(s) under /usr/bin/time -f %M; RSS/input only for inputs >= 0.5 MiB")
PY

LOAD_END="$(cut -d' ' -f1-3 /proc/loadavg)"
echo "== load average (1/5/15 min): start $LOAD_START, end $LOAD_END ($(nproc) cores);" \
  "run took $((SECONDS - START_SECONDS)) s"
