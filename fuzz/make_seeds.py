#!/usr/bin/env python3
"""make_seeds.py — writes the seed corpora fuzz/corpus/<target>/seed-* (run
from anywhere; deterministic: the same files every time). Each target gets
one input that touches every operation code once, and a few pseudo-random
programs of growing length; gc gets each as well under every compaction
mode (its first byte picks the heap options). Files named regress-* are
crash inputs kept as regression seeds: this script never touches them.
The lisp target's seeds are not written here: they are the programs of
examples/lisp/programs named in fuzz/lisp_seeds.txt, read in place."""
import os
import random

HERE = os.path.dirname(os.path.abspath(__file__))
# Operation codes per target (the switch in LLVMFuzzerTestOneInput) and the
# bytes each operation reads at most.
TARGETS = {"pool": (16, 6), "gc": (16, 5), "rc": (13, 3)}


def write(target, name, data):
    folder = os.path.join(HERE, "corpus", target)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "wb") as f:
        f.write(bytes(data))


def every_op(rng, ops, args):
    out = []
    for _ in range(2):
        for op in range(ops):
            out.append(op)
            out.extend(rng.randrange(256) for _ in range(args))
    return out


def main():
    for target, (ops, args) in TARGETS.items():
        rng = random.Random("mulch-fuzz-" + target)
        programs = {"seed-every-op": every_op(rng, ops, args)}
        for length in (24, 96, 384, 1536):
            programs["seed-random-%d" % length] = [rng.randrange(256) for _ in range(length)]
        for name, data in programs.items():
            if target == "gc":
                # byte 0: compaction auto / never / always (config % 3)
                for mode, tag in ((0, "auto"), (1, "never"), (2, "always")):
                    write(target, "%s-%s" % (name, tag), [mode] + data)
            else:
                write(target, name, data)
    gc_bridge_seeds()


def gc_bridge_seeds():
    """gc programs rich in operation 15's rarer kinds (kind byte 2: identity
    hash, 4: handle, 6: gc_own_rc, 8: a blocking region with a second
    mutator, 10: gc_external_alloc, 12: gc_report_bridge_cycles) between
    allocations and collections,
    under heap options the other seeds leave out: generational (config bit
    4) and the conservative stack (bit 5)."""
    rng = random.Random("mulch-fuzz-gc-bridge")
    data = []
    for i in range(160):
        if i % 2:
            data += [15, rng.choice((2, 4, 6, 8, 10, 12)), rng.randrange(256), rng.randrange(256)]
        else:
            data += [rng.choice((0, 0, 0, 3, 6, 7, 9, 11, 12))]
            data += [rng.randrange(256) for _ in range(5)]
    for config, tag in ((0, "auto"), (2, "always"), (2 | 16, "generational"), (32, "conservative"),
                        (2 | 16 | 32, "all")):
        write("gc", "seed-bridge-" + tag, [config] + data)


if __name__ == "__main__":
    main()
