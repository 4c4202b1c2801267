# workload.py — dict, list and string churn with a deterministic output,
# run with and without libmulch-malloc.so by run_compare.sh.
import hashlib
import random

rng = random.Random(20261125)
words = ["".join(chr(97 + rng.randrange(26)) for _ in range(rng.randrange(1, 12))) for _ in range(20000)]
counts = {}
for w in words:
    counts[w] = counts.get(w, 0) + 1
index = {}
for i, w in enumerate(words):
    index.setdefault(w[:2], []).append(i)
text = " ".join(words)
chunks = [text[i:i + 37].upper() for i in range(0, len(text), 37)]
nested = [{"k": i, "v": [str(j) * (j % 5) for j in range(i % 17)]} for i in range(20000)]
total = sum(len(d["v"]) for d in nested)
big = []
for i in range(50):
    big.append(bytearray(1000 * i))
    if i % 3 == 0:
        big.pop(0)
sizes = sum(len(b) for b in big)
h = hashlib.sha256()
for w in sorted(counts):
    h.update(("%s=%d;" % (w, counts[w])).encode())
print(len(counts), len(index), len(chunks), total, sizes, h.hexdigest())
