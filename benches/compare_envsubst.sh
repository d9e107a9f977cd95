#!/usr/bin/env bash
# Benchmark: keyfill render vs GNU envsubst on the same YAML body.
#
# Prints figures only (wall-time medians, ratios, peak RSS). It is not a test:
# the only failure exit is when keyfill itself errors on the generated input,
# so that we never silently time an error path.
#
# Usage: bash benches/compare_envsubst.sh
# Env knobs (optional): N_SMALL (default 7), N_LARGE (default 5),
#                       SIZE_MB_SMALL (default 1), SIZE_MB_LARGE (default 50)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
N_SMALL="${N_SMALL:-7}"
N_LARGE="${N_LARGE:-5}"
SIZE_MB_SMALL="${SIZE_MB_SMALL:-1}"
SIZE_MB_LARGE="${SIZE_MB_LARGE:-50}"

for tool in python3 envsubst cargo; do
  command -v "$tool" >/dev/null 2>&1 || { echo "missing required tool: $tool" >&2; exit 1; }
done

echo "== building keyfill (release)"
(cd "$ROOT" && cargo build --release --quiet)
KEYFILL="$ROOT/target/release/keyfill"
[ -x "$KEYFILL" ] || { echo "binary not found: $KEYFILL" >&2; exit 1; }

WORK="$(mktemp -d "${TMPDIR:-/tmp}/keyfill-bench.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

# --------------------------------------------------------------------------
# 1. Generate inputs.
#    For each size: <name>.keyfill.yaml (secrets block + body with $<Sn>) and
#    <name>.envsubst.yaml (same body with ${BENCH_Sn}, no secrets block).
#    secrets.env holds BENCH_S0..BENCH_S999 (24-char alphanumerics, seeded).
# --------------------------------------------------------------------------
echo "== generating inputs in $WORK"
python3 - "$WORK" "$SIZE_MB_SMALL" "$SIZE_MB_LARGE" <<'PY'
import os, random, string, sys

work, mb_small, mb_large = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
NREFS = 1000
rng = random.Random(20240601)
alnum = string.ascii_letters + string.digits
values = ["".join(rng.choice(alnum) for _ in range(24)) for _ in range(NREFS)]

with open(os.path.join(work, "secrets.env"), "w") as f:
    for i, v in enumerate(values):
        f.write(f"BENCH_S{i}={v}\n")

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

def secrets_block():
    # No comment/blank line around the block: keyfill drops exactly the block,
    # so its output can be compared byte-for-byte with envsubst's.
    lines = ["secrets:"]
    lines += [f"  S{n}: {{ env: BENCH_S{n} }}" for n in range(NREFS)]
    return "\n".join(lines) + "\n"

def generate(name, target_bytes):
    sample = len(block(0, (None, None, None), ref_kf).encode())
    nblocks = max(1, round((target_bytes - 30 * NREFS) / sample))
    nslots = nblocks * SLOTS_PER_BLOCK
    if nslots < NREFS:
        sys.exit(f"{name}: too few slots ({nslots}) for {NREFS} references")
    # ref n goes into global slot floor(n * nslots / NREFS): evenly spread, distinct.
    slot_of = {(n * nslots) // NREFS: n for n in range(NREFS)}
    kf = open(os.path.join(work, f"{name}.keyfill.yaml"), "w")
    es = open(os.path.join(work, f"{name}.envsubst.yaml"), "w")
    kf.write(secrets_block())
    for b in range(nblocks):
        refs = tuple(slot_of.get(b * SLOTS_PER_BLOCK + k) for k in range(SLOTS_PER_BLOCK))
        kf.write(block(b, refs, ref_kf))
        es.write(block(b, refs, ref_es))
    kf.close(); es.close()

generate("1mb", int(mb_small * 1024 * 1024))
generate("50mb", int(mb_large * 1024 * 1024))

# Tiny config for start-up cost: 2 env secrets, a few lines.
with open(os.path.join(work, "tiny.keyfill.yaml"), "w") as f:
    f.write("secrets:\n  S0: { env: BENCH_S0 }\n  S1: { env: BENCH_S1 }\n"
            "app:\n  password: $<S0>\n  url: \"https://h.example.com/?t=$<S1>\"\n")
with open(os.path.join(work, "tiny.envsubst.yaml"), "w") as f:
    f.write("app:\n  password: ${BENCH_S0}\n  url: \"https://h.example.com/?t=${BENCH_S1}\"\n")
PY

# Export BENCH_S0..BENCH_S999 for both tools.
set -a
# shellcheck disable=SC1091
. "$WORK/secrets.env"
set +a

# --------------------------------------------------------------------------
# 2. Sanity check (per input): keyfill must exit 0 and its output must contain
#    the secret values. Also report (informationally) whether keyfill's output
#    is byte-identical to envsubst's, since the bodies are the same.
# --------------------------------------------------------------------------
echo "== sanity check"
for name in tiny 1mb 50mb; do
  kin="$WORK/$name.keyfill.yaml"
  set +e
  "$KEYFILL" render "$kin" >"$WORK/$name.kf.out" 2>"$WORK/$name.kf.err"
  rc=$?
  set -e
  if [ "$rc" -ne 0 ] || ! grep -qF "$BENCH_S0" "$WORK/$name.kf.out"; then
    echo "keyfill failed on $name input (exit $rc); stderr:" >&2
    cat "$WORK/$name.kf.err" >&2
    [ "$rc" -eq 0 ] && echo "(exit 0 but output lacks value of BENCH_S0)" >&2
    exit 1
  fi
  envsubst <"$WORK/$name.envsubst.yaml" >"$WORK/$name.es.out"
  python3 - "$WORK" "$name" <<'PY'
import os, sys
work, name = sys.argv[1], sys.argv[2]
kf = open(os.path.join(work, f"{name}.kf.out"), "rb").read()
es = open(os.path.join(work, f"{name}.es.out"), "rb").read()
vals = [l.split("=", 1)[1].strip() for l in open(os.path.join(work, "secrets.env"))]
want = 2 if name == "tiny" else len(vals)
found = sum(1 for v in vals[:want] if v.encode() in kf)
left = kf.count(b"$<")
if kf == es:
    same = "byte-identical"
else:
    kl, el = kf.split(b"\n"), es.split(b"\n")
    if len(kl) != len(el):
        same = f"differs (keyfill {len(kf)} B / {len(kl)} lines, envsubst {len(es)} B / {len(el)} lines)"
    else:
        diff = [(a, b) for a, b in zip(kl, el) if a != b]
        quoting = sum(1 for a, b in diff if a.replace(b"'", b"").replace(b'"', b"") ==
                      b.replace(b"'", b"").replace(b'"', b""))
        same = (f"{len(diff)} lines differ, {quoting} of them only by quoting"
                + (f" (e.g. keyfill `{diff[0][0].strip().decode()}`)" if diff else ""))
print(f"   {name:>5}: keyfill exit 0, {found}/{want} secret values present, "
      f"{left} unrendered '$<'; vs envsubst: {same}")
if found != want or left:
    sys.exit(1)
PY
  rm -f "$WORK/$name.kf.out" "$WORK/$name.es.out"
done

# --------------------------------------------------------------------------
# 3. Timing + peak RSS. One python process drives all runs; each child is
#    timed with perf_counter around subprocess.run; keyfill and envsubst
#    alternate; output goes to /dev/null. Peak RSS comes from separate runs.
# --------------------------------------------------------------------------
echo "== timing (alternating runs, stdout -> /dev/null)"
python3 - "$WORK" "$KEYFILL" "$N_SMALL" "$N_LARGE" <<'PY'
import os, statistics, subprocess, sys, time

work, keyfill, n_small, n_large = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
devnull = open(os.devnull, "wb")

def run(argv, stdin_path=None):
    """Wall time of one run (fork+exec+exit), stdout to /dev/null."""
    fin = open(stdin_path, "rb") if stdin_path else subprocess.DEVNULL
    t0 = time.perf_counter()
    p = subprocess.run(argv, stdin=fin, stdout=devnull, stderr=subprocess.PIPE)
    dt = time.perf_counter() - t0
    if stdin_path: fin.close()
    if p.returncode != 0:
        sys.stderr.write(f"{argv[0]} exited {p.returncode}: {p.stderr.decode(errors='replace')}\n")
        sys.exit(1)
    return dt

# Peak RSS. Not taken from the timed runs: on Linux a child's ru_maxrss also
# counts the pre-exec high-water mark of the process that forked it (here a
# ~15 MiB python), which would swamp small figures. GNU time is a small C
# program (its own floor is < 1 MiB), so `/usr/bin/time -f %M` is used when
# present; otherwise a fresh python child reads RUSAGE_CHILDREN and the floor
# (the same measurement of /bin/true) is printed alongside.
HAVE_GNU_TIME = os.access("/usr/bin/time", os.X_OK)

def peak_rss(argv, stdin_path=None):
    """Peak RSS in MiB of one run of argv."""
    fin = open(stdin_path, "rb") if stdin_path else subprocess.DEVNULL
    if HAVE_GNU_TIME:
        p = subprocess.run(["/usr/bin/time", "-f", "%M"] + argv, stdin=fin,
                           stdout=devnull, stderr=subprocess.PIPE)
        kib = p.stderr.decode().strip().splitlines()[-1]
    else:
        code = ("import resource, subprocess, sys\n"
                "subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, check=True)\n"
                "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
        p = subprocess.run([sys.executable, "-c", code] + argv, stdin=fin,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        kib = p.stdout.decode().strip()
    if stdin_path: fin.close()
    if p.returncode != 0:
        sys.stderr.write(f"peak_rss: {argv[0]} exited {p.returncode}: {p.stderr.decode(errors='replace')}\n")
        sys.exit(1)
    return int(kib) / 1024.0

def fmt_t(s):
    return f"{s * 1000:8.1f} ms" if s < 1 else f"{s:8.2f} s "

rows = []
for name, n in (("tiny", n_small), ("1mb", n_small), ("50mb", n_large)):
    kin = os.path.join(work, f"{name}.keyfill.yaml")
    ein = os.path.join(work, f"{name}.envsubst.yaml")
    size_mb = os.path.getsize(kin) / (1024 * 1024)
    # one untimed warm-up of each so both read from page cache
    run([keyfill, "render", kin]); run(["envsubst"], ein)
    kt, et = [], []
    for _ in range(n):
        kt.append(run([keyfill, "render", kin]))
        et.append(run(["envsubst"], ein))
    k, e = statistics.median(kt), statistics.median(et)
    # Peak RSS from separate, untimed runs (max of 2), see peak_rss().
    rss = max(peak_rss([keyfill, "render", kin]) for _ in range(2))
    ers = max(peak_rss(["envsubst"], ein) for _ in range(2))
    print(f"   {name:>5} ({size_mb:6.2f} MiB, n={n}): keyfill median {fmt_t(k)} "
          f"[{fmt_t(min(kt)).strip()}..{fmt_t(max(kt)).strip()}], envsubst median {fmt_t(e)} "
          f"[{fmt_t(min(et)).strip()}..{fmt_t(max(et)).strip()}]")
    rows.append((name, size_mb, n, k, e, k / e, rss, rss / size_mb, ers))

print()
print("== summary (wall-time medians; peak RSS = max of 2 separate runs)")
hdr = (f"{'input':<6} {'size MiB':>8} {'n':>2} {'keyfill':>11} {'envsubst':>11} "
       f"{'kf/es':>7} {'kf RSS MiB':>10} {'RSS/input':>9} {'es RSS MiB':>10}")
print(hdr)
print("-" * len(hdr))
for name, size_mb, n, k, e, ratio, rss, mult, ers in rows:
    mult_s = f"{mult:8.1f}x" if size_mb >= 0.5 else f"{'-':>9}"   # meaningless for a few bytes
    print(f"{name:<6} {size_mb:8.2f} {n:>2} {fmt_t(k):>11} {fmt_t(e):>11} "
          f"{ratio:6.2f}x {rss:10.1f} {mult_s} {ers:10.1f}")
print(f"RSS via {'/usr/bin/time -f %M' if HAVE_GNU_TIME else 'python RUSAGE_CHILDREN'}"
      + ("" if HAVE_GNU_TIME else f" (floor: /bin/true = {peak_rss(['/bin/true']):.1f} MiB)")
      + "; size = keyfill input (incl. secrets block); kf/es = keyfill/envsubst")
PY
