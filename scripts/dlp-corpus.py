#!/usr/bin/env python3
"""Labelled DLP corpus: generate it, score findings against it, or do both with gatehouse.

  dlp-corpus.py generate --seed 1 --lines 20000 --out corpus.txt --labels labels.jsonl
  dlp-corpus.py evaluate --labels labels.jsonl --findings findings.jsonl
  dlp-corpus.py run --gatehouse target/release/gatehouse [--seed 1 --lines 20000] [--form all]

Forms (`--form`, default `text`; `all` runs each):
  text    one file mixing CSV rows, NDJSON events, access logs, config snippets and prose,
          scanned as text with the built-in `default` profile;
  csv     a people CSV (header names as context) scanned with a profile whose column rules
          mask the `ssn` and `member_ref` columns whatever they hold (entity FIELD);
  ndjson  customer events scanned with a profile whose path rules redact `customer.ssn` and
          `customer.tax_id` (entity FIELD), key names as context.
The csv and ndjson forms run `gatehouse dlp scan --config --profile` with a generated config.

In the text form each line Each line
holds zero or more sensitive values (labelled with byte offsets and entity) and hard
negatives that look like them but are not: Luhn failures, SSNs outside the SSA ranges, IBANs
with bad check digits, UUIDs, timestamps, epoch milliseconds, order numbers, version strings,
hex digests, the AWS documentation keys, numbers and dates without their context word,
publishable Stripe keys, short or low-entropy passwords. Standard library only; seeded, so
the same seed gives the same bytes. Scoring: a label is found when a finding of the same
entity overlaps it; a finding that overlaps no label of its entity is a false positive.
"""

import argparse
import base64
import bisect
import json
import os
import random
import subprocess
import sys
import tempfile
import time

WORDS = ("the data partner report quarterly revenue shipment was delivered to warehouse and "
         "invoice approved by finance team after review of contract terms with customer support "
         "ticket closed on time region north south budget forecast meeting notes draft final "
         "vendor audit schedule update summary").split()
FIRST = "ann bob chen dara eli fatima gus hana ivan jo kofi lena mateo nia omar priya".split()
LAST = "smith garcia nguyen okafor muller rossi tanaka khan silva novak".split()
ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
UPNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
B64 = ALNUM + "+/"


class Doc:
    """Text under construction with labels by byte offset (the corpus is ASCII)."""

    def __init__(self):
        self.parts, self.len, self.labels = [], 0, []

    def add(self, text, entity=None):
        if entity:
            self.labels.append({"start": self.len, "end": self.len + len(text), "entity": entity})
        self.parts.append(text)
        self.len += len(text)


def digits(r, n):
    return "".join(r.choice("0123456789") for _ in range(n))


def luhn_digit(body):
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:
            d = d * 2 - 9 if d * 2 > 9 else d * 2
        total += d
    return str((10 - total % 10) % 10)


def card(r, valid=True):
    brand = r.choice([("4", 16), ("51", 16), ("55", 16), ("2221", 16), ("37", 15), ("6011", 16), ("35", 16)])
    body = brand[0] + digits(r, brand[1] - len(brand[0]) - 1)
    check = luhn_digit(body)
    if not valid:
        check = str((int(check) + 1 + r.randrange(9)) % 10)
    num = body + check
    style = r.randrange(3)
    if style == 0:
        return num
    sep = " " if style == 1 else "-"
    if len(num) == 15:
        return sep.join([num[:4], num[4:10], num[10:]])
    return sep.join(num[i:i + 4] for i in range(0, 16, 4))


def ssn_parts(r, valid=True):
    area = r.choice([a for a in range(1, 900) if a != 666])
    group, serial = r.randrange(1, 100), r.randrange(1, 10000)
    if not valid:
        kind = r.randrange(4)
        if kind == 0:
            area = r.choice([0, 666, r.randrange(900, 1000)])
        elif kind == 1:
            group = 0
        elif kind == 2:
            serial = 0
        else:
            area, group, serial = 78, 5, 1120
    return f"{area:03d}", f"{group:02d}", f"{serial:04d}"


IBAN = {"DE": (18, "n"), "GB": (18, "a4"), "FR": (23, "n"), "NL": (14, "a4"), "ES": (20, "n"),
        "IT": (23, "a1"), "BE": (12, "n"), "CH": (17, "n")}


def iban(r, valid=True):
    cc = r.choice(sorted(IBAN))
    n, kind = IBAN[cc]
    letters = int(kind[1:]) if kind.startswith("a") else 0
    bban = "".join(r.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(letters)) + digits(r, n - letters)
    num = int("".join(str(int(c, 36)) for c in bban + cc + "00"))
    check = 98 - num % 97
    if not valid:
        check = (check + 1 + r.randrange(50)) % 97 + 2
    s = f"{cc}{check:02d}{bban}"
    return " ".join(s[i:i + 4] for i in range(0, len(s), 4)) if r.random() < 0.5 else s


def aba(r):
    while True:
        prefix = r.choice(list(range(1, 13)) + list(range(21, 33)) + list(range(61, 73)) + [80])
        d = f"{prefix:02d}" + digits(r, 6)
        w = [3, 7, 1, 3, 7, 1, 3, 7]
        s = sum(int(c) * w[i] for i, c in enumerate(d))
        out = d + str((10 - s % 10) % 10)
        if len(set(out)) > 1:
            return out


def nanp(r, style):
    a, e, n = f"{r.randrange(2, 10)}{digits(r, 2)}", f"{r.randrange(2, 10)}{digits(r, 2)}", digits(r, 4)
    return [f"({a}) {e}-{n}", f"{a}-{e}-{n}", f"{a}.{e}.{n}", f"{a}{e}{n}"][style]


def e164(r):
    return r.choice([
        lambda: f"+1 {nanp(r, 1).replace('-', ' ')}",
        lambda: f"+44 20 {digits(r, 4)} {digits(r, 4)}",
        lambda: f"+49 30 {digits(r, 6)}",
        lambda: f"+1{nanp(r, 3)}",
        lambda: f"+33 {r.randrange(1, 10)} {digits(r, 2)} {digits(r, 2)} {digits(r, 2)} {digits(r, 2)}",
    ])()


def ipv4(r):
    return f"{r.randrange(1, 224)}.{r.randrange(256)}.{r.randrange(256)}.{r.randrange(1, 255)}"


def ipv6(r):
    g = [f"{r.randrange(65536):x}" for _ in range(8)]
    return r.choice([":".join(g), f"2001:db8::{g[0]}:{g[1]}", f"fe80::{g[2]}:{g[3]}:{g[4]}:{g[5]}"])


def dob(r):
    y, m, d = r.randrange(1940, 2006), r.randrange(1, 13), r.randrange(1, 29)
    months = "January February March April May June July August September October November December".split()
    return r.choice([f"{y}-{m:02d}-{d:02d}", f"{m:02d}/{d:02d}/{y}", f"{d} {months[m - 1]} {y}"])


def rand(r, alphabet, n):
    return "".join(r.choice(alphabet) for _ in range(n))


def b64url(obj):
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


def jwt(r):
    return (b64url({"alg": "HS256", "typ": "JWT"}) + "." +
            b64url({"sub": digits(r, 8), "name": r.choice(FIRST), "iat": 1700000000 + r.randrange(10**7)}) +
            "." + rand(r, ALNUM + "-_", 43))


def pem(r):
    kind = r.choice(["RSA ", "EC ", "OPENSSH ", ""])
    lines = [rand(r, B64, 64) for _ in range(r.randrange(3, 12))]
    return f"-----BEGIN {kind}PRIVATE KEY-----\n" + "\n".join(lines) + f"\n-----END {kind}PRIVATE KEY-----"


def uuid(r):
    h = rand(r, "0123456789abcdef", 32)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def prose(r, doc, n=None):
    n = n or r.randrange(6, 16)
    doc.add(" ".join(r.choice(WORDS) for _ in range(n)))


# Each positive writes a short context and the labelled value.
POSITIVES = [
    ("CREDIT_CARD", lambda r, d: (d.add("card "), d.add(card(r), "CREDIT_CARD"))),
    ("US_SSN", lambda r, d: (d.add("ssn "), d.add("-".join(ssn_parts(r)), "US_SSN"))),
    ("US_SSN", lambda r, d: (d.add("SSN: "), d.add("".join(ssn_parts(r)), "US_SSN"))),
    ("IBAN", lambda r, d: (d.add("iban "), d.add(iban(r), "IBAN"))),
    ("ABA_ROUTING_NUMBER", lambda r, d: (d.add("routing number "), d.add(aba(r), "ABA_ROUTING_NUMBER"))),
    ("EMAIL_ADDRESS", lambda r, d: (d.add("mail "), d.add(f"{r.choice(FIRST)}.{r.choice(LAST)}{r.randrange(100)}@{r.choice(['example.com', 'mail.example.org', 'corp.example.co.uk'])}", "EMAIL_ADDRESS"))),
    ("PHONE_NUMBER", lambda r, d: (d.add("reach "), d.add(e164(r), "PHONE_NUMBER"))),
    ("PHONE_NUMBER", lambda r, d: (d.add("phone: "), d.add(nanp(r, r.randrange(4)), "PHONE_NUMBER"))),
    ("IP_ADDRESS", lambda r, d: (d.add("from "), d.add(ipv4(r), "IP_ADDRESS"))),
    ("IP_ADDRESS", lambda r, d: (d.add("peer "), d.add(ipv6(r), "IP_ADDRESS"))),
    ("DATE_OF_BIRTH", lambda r, d: (d.add(r.choice(["DOB: ", "born ", "date of birth "])), d.add(dob(r), "DATE_OF_BIRTH"))),
    ("US_PASSPORT", lambda r, d: (d.add("passport "), d.add(r.choice([rand(r, "ABCDEFGHJKLMNPRSTUVWXYZ", 1) + digits(r, 8), digits(r, 9)]), "US_PASSPORT"))),
    ("AWS_ACCESS_KEY_ID", lambda r, d: (d.add("aws_access_key_id = "), d.add(r.choice(["AKIA", "ASIA"]) + rand(r, UPNUM, 16), "AWS_ACCESS_KEY_ID"))),
    ("AWS_SECRET_ACCESS_KEY", lambda r, d: (d.add("aws_secret_access_key = "), d.add(rand(r, B64, 40), "AWS_SECRET_ACCESS_KEY"))),
    ("PRIVATE_KEY", lambda r, d: (d.add("key:\n"), d.add(pem(r), "PRIVATE_KEY"))),
    ("JWT", lambda r, d: (d.add("Authorization: Bearer "), d.add(jwt(r), "JWT"))),
    ("GITHUB_TOKEN", lambda r, d: (d.add("GH="), d.add("ghp_" + rand(r, ALNUM, 36), "GITHUB_TOKEN"))),
    ("SLACK_TOKEN", lambda r, d: (d.add("SLACK="), d.add(f"xoxb-{digits(r, 12)}-{digits(r, 12)}-{rand(r, ALNUM, 24)}", "SLACK_TOKEN"))),
    ("STRIPE_KEY", lambda r, d: (d.add("STRIPE="), d.add("sk_live_" + rand(r, ALNUM, 24), "STRIPE_KEY"))),
    ("GENERIC_SECRET", lambda r, d: (d.add("api_key="), d.add(rand(r, ALNUM, 24), "GENERIC_SECRET"))),
]

HARD_NEGATIVES = [
    lambda r: "order " + card(r, valid=False),
    lambda r: "ref " + "-".join(ssn_parts(r, valid=False)),
    lambda r: "acct " + iban(r, valid=False),
    lambda r: "id " + uuid(r),
    lambda r: f"at 2025-{r.randrange(1, 13):02d}-{r.randrange(1, 29):02d}T{r.randrange(24):02d}:{r.randrange(60):02d}:00Z",
    lambda r: f"ts {1700000000000 + r.randrange(10**11)}",
    lambda r: f"order {digits(r, 9)} shipped",
    lambda r: f"invoice {nanp(r, 1)} paid",
    lambda r: f"version {r.randrange(10)}.{r.randrange(10)}.{r.randrange(10)}.{r.randrange(10)}.{r.randrange(10)}",
    lambda r: "sha1 " + rand(r, "0123456789abcdef", 40),
    lambda r: "aws_access_key_id = AKIAIOSFODNN7EXAMPLE",
    lambda r: "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    lambda r: "pk_live_" + rand(r, ALNUM, 24),
    lambda r: "password=hunter2",
    lambda r: f"created {r.randrange(1990, 2025)}-{r.randrange(1, 13):02d}-{r.randrange(1, 29):02d}",
    lambda r: f"qty {r.randrange(1000)} price {r.randrange(100000) / 100:.2f}",
    lambda r: f"build {rand(r, '0123456789abcdef', 7)} on node-{r.randrange(100)}",
]


def line(r, doc):
    kind = r.randrange(5)
    n_pos = r.choice([0, 0, 1, 1, 1, 2, 3])
    items = [("pos", r.choice(POSITIVES)) for _ in range(n_pos)]
    items += [("neg", r.choice(HARD_NEGATIVES)) for _ in range(r.randrange(0, 3))]
    r.shuffle(items)
    head = {0: f"{r.randrange(10**6)},", 1: '{"event":"' + r.choice(["view", "share", "list"]) + '","note":"',
            2: f"{ipv4(r)} - - [05/Nov/2025:10:{r.randrange(60):02d}:00 +0000] \"GET /x\" 200 ",
            3: "# ", 4: ""}[kind]
    if kind == 2:  # the client address of a log line is an IP too
        doc.add(head[:head.index(" ")], "IP_ADDRESS")
        doc.add(head[head.index(" "):])
    else:
        doc.add(head)
    prose(r, doc, r.randrange(2, 6))
    for what, item in items:
        doc.add(", " if kind == 0 else " ; ")
        if what == "pos":
            item[1](r, doc)
        else:
            doc.add(item(r))
    doc.add(" ")
    prose(r, doc, r.randrange(2, 6))
    doc.add('"}\n' if kind == 1 else "\n")


def generate(seed, lines):
    r, doc = random.Random(seed), Doc()
    for _ in range(lines):
        line(r, doc)
    return "".join(doc.parts), doc.labels


def notes(r, doc):
    """Free text for a CSV cell or JSON string: prose, maybe a hard negative or a positive."""
    prose(r, doc, r.randrange(2, 5))
    roll = r.randrange(4)
    if roll == 0:
        doc.add(" ; " + r.choice(HARD_NEGATIVES)(r))
    elif roll == 1:
        doc.add(" ; ")
        r.choice([p for p in POSITIVES if p[0] in ("EMAIL_ADDRESS", "CREDIT_CARD", "IP_ADDRESS")])[1](r, doc)


# What a member_ref or tax_id holds: opaque identifiers no detector knows.
def opaque(r):
    return r.choice([f"M-{digits(r, 9)}", f"{rand(r, UPNUM, 3)}{digits(r, 6)}", "n/a", f"ref {digits(r, 4)}"])


CSV_COLUMNS = "id,name,email,phone,card,ssn,member_ref,city,notes"
RULES = """[dlp.profiles.corpus]
default_action = "mask"
columns = { ssn = "mask", member_ref = "redact" }
fields = { "customer.ssn" = "redact", "customer.tax_id" = "redact" }
"""


def generate_csv(seed, lines):
    """A people CSV: detectors find emails, phones, cards (header names as context); the
    column rules cover every `ssn` and `member_ref` cell, SSN-shaped or not."""
    r, doc = random.Random(seed), Doc()
    doc.add(CSV_COLUMNS + "\n")
    for i in range(lines):
        doc.add(f"{i},{r.choice(FIRST).title()} {r.choice(LAST).title()},")
        doc.add(f"{r.choice(FIRST)}.{r.choice(LAST)}{r.randrange(100)}@example.com", "EMAIL_ADDRESS")
        doc.add(",")
        doc.add(r.choice([e164(r), nanp(r, r.randrange(4))]), "PHONE_NUMBER")
        doc.add(",")
        if r.randrange(5):
            doc.add(card(r), "CREDIT_CARD")
        else:
            doc.add(card(r, valid=False))  # an order number with a failed Luhn check
        doc.add(",")
        doc.add(r.choice(["-".join(ssn_parts(r)), "".join(ssn_parts(r)), "-".join(ssn_parts(r, valid=False)), "unknown"]), "FIELD")
        doc.add(",")
        doc.add(opaque(r), "FIELD")
        doc.add(f",{r.choice(['Lyon', 'Oslo', 'Austin', 'Pune'])},")
        notes(r, doc)
        doc.add("\n")
    return "".join(doc.parts), doc.labels


def generate_ndjson(seed, lines):
    """Customer events: path rules cover `customer.ssn` and `customer.tax_id` (strings or
    numbers); emails, cards, IPs and dates of birth (key `dob` as context) are detected."""
    r, doc = random.Random(seed), Doc()
    for i in range(lines):
        doc.add(f'{{"id":{i},"customer":{{"name":"{r.choice(FIRST).title()}","email":"')
        doc.add(f"{r.choice(FIRST)}.{r.choice(LAST)}@mail.example.org", "EMAIL_ADDRESS")
        doc.add('","ssn":')
        if r.randrange(4):
            doc.add('"')
            doc.add("-".join(ssn_parts(r)), "FIELD")
            doc.add('"')
        else:
            doc.add("".join(ssn_parts(r)).lstrip("0") or "1", "FIELD")  # a JSON number
        doc.add(',"tax_id":"')
        doc.add(opaque(r), "FIELD")
        doc.add('","dob":"')
        doc.add(dob(r), "DATE_OF_BIRTH")
        doc.add('"},"payment":{"card":"')
        doc.add(card(r), "CREDIT_CARD")
        doc.add('","order":"' + card(r, valid=False) + '"},"ip":"')
        doc.add(ipv4(r), "IP_ADDRESS")
        doc.add('","at":"2025-11-05T10:00:00Z","note":"')
        notes(r, doc)
        doc.add('"}\n')
    return "".join(doc.parts), doc.labels


FORMS = {"text": (generate, "txt"), "csv": (generate_csv, "csv"), "ndjson": (generate_ndjson, "ndjson")}


def run_form(a, form):
    text, labels = FORMS[form][0](a.seed, a.lines)
    with tempfile.TemporaryDirectory() as tmp:
        corpus = os.path.join(tmp, "corpus." + FORMS[form][1])
        found = os.path.join(tmp, "findings.jsonl")
        with open(corpus, "w") as f:
            f.write(text)
        cmd = [a.gatehouse, "dlp", "scan", "--findings", found]
        if form != "text":
            os.makedirs(os.path.join(tmp, "partners"))
            config = os.path.join(tmp, "gatehouse.toml")
            with open(config, "w") as f:
                f.write(RULES)
            cmd += ["--config", config, "--profile", "corpus"]
        t = time.perf_counter()
        subprocess.run(cmd + [corpus], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        secs = time.perf_counter() - t
        findings = read_jsonl(found)
    print(f"form {form}: seed {a.seed}, {len(text)} bytes, {len(labels)} labels; "
          f"gatehouse dlp scan: {secs:.3f} s ({len(text) / secs / 1e6:.1f} MB/s incl. start-up)")
    stats = evaluate(labels, findings)
    report(stats)
    for e in sorted(stats):
        if a.show and (stats[e][1] or stats[e][2]):
            print(e)
            mistakes(text, labels, findings, e, a.show)


def overlapping(spans, targets):
    """For each span of `spans`, whether it overlaps one of `targets` (both sorted by start;
    targets of one entity do not nest deeply, so a running maximum of ends suffices)."""
    out, j, reach = [], 0, []
    ends_by_start = sorted(targets)
    starts = [t[0] for t in ends_by_start]
    # prefix maximum of ends: the furthest any target starting at or before index i reaches
    best = -1
    for _, t in ends_by_start:
        best = max(best, t)
        reach.append(best)
    for s, t in spans:
        i = bisect.bisect_left(starts, t) - 1  # last target starting before the span's end
        out.append(i >= 0 and reach[i] > s)
    return out


def evaluate(labels, findings):
    stats = {}
    for e in {x["entity"] for x in labels} | {x["entity"] for x in findings}:
        ls = sorted((x["start"], x["end"]) for x in labels if x["entity"] == e)
        fs = sorted((x["start"], x["end"]) for x in findings if x["entity"] == e)
        tp = sum(overlapping(ls, fs))
        fp = sum(1 for hit in overlapping(fs, ls) if not hit)
        stats[e] = (tp, fp, len(ls) - tp)
    return stats


def mistakes(text, labels, findings, entity, n):
    """Up to `n` false positives and false negatives of `entity`, with the text around them."""
    ls = [(x["start"], x["end"]) for x in labels if x["entity"] == entity]
    fs = [(x["start"], x["end"], x["detector"]) for x in findings if x["entity"] == entity]
    overlaps = lambda a, bs: any(b[0] < a[1] and a[0] < b[1] for b in bs)
    show = lambda s, e: repr(text[max(0, s - 40):s] + "[[" + text[s:e] + "]]" + text[e:e + 30])
    for f in [f for f in fs if not overlaps(f, ls)][:n]:
        print(f"  FP {f[2]}: {show(f[0], f[1])}")
    for l in [l for l in ls if not overlaps(l, fs)][:n]:
        print(f"  FN: {show(l[0], l[1])}")


def report(stats, out=sys.stdout):
    ratio = lambda a, b: a / b if b else 1.0
    print(f"{'entity':24} {'labels':>7} {'found':>7} {'tp':>6} {'fp':>5} {'fn':>5} {'precision':>9} {'recall':>7}", file=out)
    tot = [0, 0, 0]
    for e in sorted(stats):
        tp, fp, fn = stats[e]
        tot = [tot[0] + tp, tot[1] + fp, tot[2] + fn]
        print(f"{e:24} {tp + fn:7} {tp + fp:7} {tp:6} {fp:5} {fn:5} {ratio(tp, tp + fp):9.4f} {ratio(tp, tp + fn):7.4f}", file=out)
    tp, fp, fn = tot
    print(f"{'ALL (micro)':24} {tp + fn:7} {tp + fp:7} {tp:6} {fp:5} {fn:5} {ratio(tp, tp + fp):9.4f} {ratio(tp, tp + fn):7.4f}", file=out)


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(l) for l in f if l.strip()]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("generate")
    g.add_argument("--seed", type=int, default=1)
    g.add_argument("--lines", type=int, default=20000)
    g.add_argument("--out", required=True)
    g.add_argument("--labels", required=True)
    g.add_argument("--form", choices=list(FORMS), default="text")
    e = sub.add_parser("evaluate")
    e.add_argument("--labels", required=True)
    e.add_argument("--findings", required=True)
    run = sub.add_parser("run")
    run.add_argument("--gatehouse", default="target/release/gatehouse")
    run.add_argument("--seed", type=int, default=1)
    run.add_argument("--lines", type=int, default=20000)
    run.add_argument("--show", type=int, default=0, help="print this many mistakes per entity")
    run.add_argument("--form", choices=[*FORMS, "all"], default="text")
    a = p.parse_args()
    if a.cmd == "generate":
        text, labels = FORMS[a.form][0](a.seed, a.lines)
        with open(a.out, "w") as f:
            f.write(text)
        with open(a.labels, "w") as f:
            f.writelines(json.dumps(l) + "\n" for l in labels)
        print(f"{len(text)} bytes, {len(labels)} labels", file=sys.stderr)
    elif a.cmd == "evaluate":
        report(evaluate(read_jsonl(a.labels), read_jsonl(a.findings)))
    else:
        for form in FORMS if a.form == "all" else [a.form]:
            run_form(a, form)


if __name__ == "__main__":
    main()
