#!/usr/bin/env python3
"""gatehouse's DLP engine beside Presidio's pattern recognizers on the same labelled corpus.

  python3 -m pip install 'presidio-analyzer==2.2.366'      # once; pulls spaCy
  cargo build --release
  python3 scripts/dlp-peer.py [--gatehouse target/release/gatehouse] [--lines 2000] [--seed 1]

Presidio runs offline with its pattern recognizers over a blank spaCy English pipeline (no
model download, no NER: names, places and dates of birth are out of this comparison). Both
tools get the corpus of scripts/dlp-corpus.py; only the entities both detect are scored
(Presidio has no ABA routing, AWS, PEM, JWT, GitHub, Slack, Stripe or generic secret
recognizers). Throughput: wall time of one run over the whole corpus, one process each;
both exclude start-up (gatehouse's ~0.2 s is timed on an empty input and subtracted).
"""

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("dlp_corpus", os.path.join(HERE, "dlp-corpus.py"))
corpus = importlib.util.module_from_spec(spec)
spec.loader.exec_module(corpus)

# Presidio entity -> ours, for the entities both have.
SHARED = {
    "CREDIT_CARD": "CREDIT_CARD",
    "US_SSN": "US_SSN",
    "IBAN_CODE": "IBAN",
    "EMAIL_ADDRESS": "EMAIL_ADDRESS",
    "PHONE_NUMBER": "PHONE_NUMBER",
    "IP_ADDRESS": "IP_ADDRESS",
    "US_PASSPORT": "US_PASSPORT",
}


def presidio(text):
    import logging

    # Its email check tries to fetch the public suffix list, then uses its bundled copy.
    logging.getLogger("tldextract").setLevel(logging.CRITICAL)
    import spacy
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import SpacyNlpEngine

    nlp = SpacyNlpEngine(models=[{"lang_code": "en", "model_name": "blank"}])
    nlp.nlp = {"en": spacy.blank("en")}
    analyzer = AnalyzerEngine(nlp_engine=nlp, supported_languages=["en"])
    analyzer.analyze("warm up 4111 1111 1111 1111", language="en")
    findings, offset = [], 0
    start = time.perf_counter()
    for line in text.splitlines(keepends=True):
        for r in analyzer.analyze(line, entities=list(SHARED), language="en"):
            findings.append({"start": offset + r.start, "end": offset + r.end,
                             "entity": SHARED[r.entity_type], "detector": r.entity_type})
        offset += len(line)
    return findings, time.perf_counter() - start


def gatehouse(binary, text):
    """Findings and seconds, less the start-up (timed on an empty input)."""
    def run(path, found):
        start = time.perf_counter()
        subprocess.run([binary, "dlp", "scan", "--findings", found, path],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        return time.perf_counter() - start

    with tempfile.TemporaryDirectory() as tmp:
        path, empty = os.path.join(tmp, "corpus.txt"), os.path.join(tmp, "empty.txt")
        found = os.path.join(tmp, "findings.jsonl")
        with open(path, "w") as f:
            f.write(text)
        open(empty, "w").close()
        startup = min(run(empty, found) for _ in range(3))
        secs = min(run(path, found) for _ in range(3))
        return corpus.read_jsonl(found), max(secs - startup, 1e-6)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--gatehouse", default="target/release/gatehouse")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--lines", type=int, default=2000)
    a = p.parse_args()
    text, labels = corpus.generate(a.seed, a.lines)
    shared = set(SHARED.values())
    labels = [l for l in labels if l["entity"] in shared]
    ours, our_secs = gatehouse(a.gatehouse, text)
    ours = [f for f in ours if f["entity"] in shared]
    theirs, their_secs = presidio(text)
    a_stats, b_stats = corpus.evaluate(labels, ours), corpus.evaluate(labels, theirs)
    mb = len(text) / 1e6
    print(f"corpus: seed {a.seed}, {len(text)} bytes, {len(labels)} labels of the shared entities")
    print(f"throughput: gatehouse {mb / our_secs:.2f} MB/s, presidio {mb / their_secs:.3f} MB/s "
          f"({their_secs / our_secs:.0f}x)")
    print(f"{'entity':16} {'labels':>6}   {'gatehouse P':>11} {'R':>6}   {'presidio P':>10} {'R':>6}")
    ratio = lambda x, y: x / y if y else 1.0
    totals = {"a": [0, 0, 0], "b": [0, 0, 0]}
    for e in sorted(shared):
        (atp, afp, afn), (btp, bfp, bfn) = a_stats.get(e, (0, 0, 0)), b_stats.get(e, (0, 0, 0))
        totals["a"] = [x + y for x, y in zip(totals["a"], (atp, afp, afn))]
        totals["b"] = [x + y for x, y in zip(totals["b"], (btp, bfp, bfn))]
        print(f"{e:16} {atp + afn:6}   {ratio(atp, atp + afp):11.4f} {ratio(atp, atp + afn):6.4f}   "
              f"{ratio(btp, btp + bfp):10.4f} {ratio(btp, btp + bfn):6.4f}")
    (atp, afp, afn), (btp, bfp, bfn) = totals["a"], totals["b"]
    print(f"{'ALL (micro)':16} {atp + afn:6}   {ratio(atp, atp + afp):11.4f} {ratio(atp, atp + afn):6.4f}   "
          f"{ratio(btp, btp + bfp):10.4f} {ratio(btp, btp + bfn):6.4f}")


if __name__ == "__main__":
    sys.exit(main())
