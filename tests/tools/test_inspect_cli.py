#!/usr/bin/env python3
"""gpummu-inspect against gpummu-replay: on random scripts (both formats) every translation
replay prints agrees with the run inspect prints for that VA (or no run, when unmapped), and
the table totals agree; runs coalesce as documented; --va limits; the SVG parses; corrupt
images exit 1 with the VA and table named; bad arguments exit 2.

Given GPUMMU_DEMO too: gpummu-demo --svg draws a tree and a 4096-square VRAM map that parse.
Given RSVG_CONVERT (librsvg, the renderer GNOME's image viewer and many browsers' engines
share the SVG rules with) and the source root too: every picture the tools drew here and
every SVG under docs/img renders to a PNG of the size the SVG declares.

usage: test_inspect_cli.py GPUMMU_REPLAY GPUMMU_INSPECT [GPUMMU_DEMO [RSVG_CONVERT SOURCE_ROOT]]"""
import atexit
import json
import os
import random
import struct
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

replay, inspect = sys.argv[1], sys.argv[2]
workdir = tempfile.mkdtemp(prefix="gpummu-inspect-test.")
atexit.register(shutil.rmtree, workdir, ignore_errors=True)  # its images are 1 GiB a run
passed = failed = 0
KIB, MIB, GIB = 1 << 10, 1 << 20, 1 << 30


def check(name, ok, detail=""):
    global passed, failed
    if ok:
        passed += 1
    else:
        failed += 1
        print(f"FAIL {name}: {detail}"[:2000])


def run_replay(mmu, script, image, vram="64M"):
    done = subprocess.run([replay, "--mmu", mmu, "--vram", vram, "--image", image],
                          input=script, capture_output=True, text=True)
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    return done.returncode, lines


def run_inspect(*args):
    done = subprocess.run([inspect, *args], capture_output=True, text=True)
    return done.returncode, done.stdout, done.stderr


def runs_of(stdout):
    objects = [json.loads(line) for line in stdout.splitlines()]
    return objects[:-1], objects[-1]


def holding(runs, va):
    for run in runs:
        if int(run["va"], 16) <= va < int(run["va"], 16) + run["size"]:
            return run
    return None


def random_script(rng, mmu):
    """Maps, unmaps, sparse ranges and protects in two VA regions (one at the top of the
    format's VA space), then translations of VAs near what was touched."""
    va_bits = 49 if mmu == "v2" else 57
    regions = [0x4000_0000, (1 << va_bits) - 256 * MIB]
    sizes = {"4k": 4 * KIB, "64k": 64 * KIB, "2m": 2 * MIB}
    lines, touched = [], []
    for _ in range(250):
        base = rng.choice(regions)
        page = rng.choice(list(sizes))
        unit = sizes[page]
        va = base + rng.randrange(0, (128 * MIB) // unit) * unit
        size = unit * rng.randint(1, 24 if unit < 2 * MIB else 3)
        kind = rng.random()
        if kind < 0.5:
            aperture = rng.choice(["vram", "vram", "sys_coherent", "sys_noncoherent"])
            limit = 48 * MIB if aperture == "vram" else 64 * GIB
            pa = rng.randrange(0, (limit - size) // unit) * unit
            extra = " ro" if rng.random() < 0.3 else ""
            extra += " replace" if rng.random() < 0.3 else ""
            pages = f"page={page}" if rng.random() < 0.7 else ""
            lines.append(f"map {va:#x} {pa:#x} {size:#x} {pages} aperture={aperture}{extra}")
        elif kind < 0.7:
            lines.append(f"unmap {va:#x} {size:#x}")
        elif kind < 0.85:
            lines.append(f"sparse {va:#x} {size:#x}")
        elif kind < 0.92:
            lines.append(f"clear_sparse {va:#x} {size:#x}")
        else:
            lines.append(f"protect {va:#x} {size:#x} {rng.choice(['ro', 'rw'])}")
        touched.append((va, size))
    for _ in range(400):
        va, size = rng.choice(touched)
        probe = va + rng.randrange(0, size + 64 * KIB) - 32 * KIB
        probe = max(0, min(probe, (1 << va_bits) - 1)) & ~0x7
        lines.append(f"translate {probe:#x}")
    return "\n".join(lines) + "\n"


# 1. Random scripts: replay's translations against inspect's runs.
for mmu in ("v2", "v3"):
    for seed in range(1, 5):
        rng = random.Random(seed * 7919 + (2 if mmu == "v2" else 3))
        image = os.path.join(workdir, f"{mmu}-{seed}.img")
        code, out = run_replay(mmu, random_script(rng, mmu), image)
        check(f"{mmu}-{seed}-replay-ran", code in (0, 1), f"rc={code}")
        summary = out[-1]
        code, stdout, stderr = run_inspect("--mmu", mmu, "--image", image, "--pdb",
                                           summary["pdb"], "--json")
        check(f"{mmu}-{seed}-inspect-ran", code == 0, f"rc={code} {stderr}")
        if code != 0:
            continue
        runs, totals = runs_of(stdout)
        check(f"{mmu}-{seed}-tables", totals == {"tables": summary["tables"],
                                                 "table_bytes": summary["table_bytes"]},
              f"{totals} vs {summary}")
        translations = [o for o in out if "state" in o]
        mapped = sum(1 for t in translations if t["state"] == "mapped")
        check(f"{mmu}-{seed}-enough-mapped", mapped > 50 and len(runs) > 20,
              f"{mapped} mapped translations, {len(runs)} runs")
        bad = []
        for t in translations:
            va = int(t["va"], 16)
            run = holding(runs, va)
            if t["state"] == "unmapped":
                if run is not None:
                    bad.append((t, run))
                continue
            if run is None or run["state"] != t["state"]:
                bad.append((t, run))
                continue
            if t["state"] == "mapped":
                expected_pa = int(run["pa"], 16) + (va - int(run["va"], 16))
                if (int(t["pa"], 16) != expected_pa or t["page_size"] != run["page_size"] or
                        t["aperture"] != run["aperture"] or t["read_only"] != run["read_only"]):
                    bad.append((t, run))
        check(f"{mmu}-{seed}-translations-agree", not bad, f"{len(bad)} disagree: {bad[:3]}")
        # Runs are in VA order, disjoint, and maximal: no two neighbours could merge.
        order_ok, maximal_ok = True, True
        for a, b in zip(runs, runs[1:]):
            a_end = int(a["va"], 16) + a["size"]
            if a_end > int(b["va"], 16):
                order_ok = False
            if a_end == int(b["va"], 16) and a["state"] == b["state"] == "sparse":
                maximal_ok = False
        check(f"{mmu}-{seed}-runs-ordered", order_ok)
        check(f"{mmu}-{seed}-sparse-runs-maximal", maximal_ok)
        code, text, _ = run_inspect("--mmu", mmu, "--image", image, "--pdb", summary["pdb"])
        check(f"{mmu}-{seed}-text-lines", code == 0 and len(text.splitlines()) == len(runs) + 1
              and text.splitlines()[-1] == f"tables {totals['tables']} table_bytes "
                                           f"{totals['table_bytes']}", text[-200:])

# 2. Coalescing and --va on a known script.
for mmu in ("v2", "v3"):
    image = os.path.join(workdir, f"{mmu}-known.img")
    script = ("map 0x200000 0x1000000 0x400000 page=64k\n"      # one run of 64 pages
              "map 0x600000 0x1400000 0x10000 page=64k\n"       # continues it (PA follows)
              "map 0x610000 0x1410000 0x10000 page=64k ro\n"    # read-only: a new run
              "map 0x10000000 0x2000000 0x3000 page=4k\n"
              "sparse 0x40000000 0x400000\n"
              "sparse 0x40400000 0x10000\n")                    # continues the sparse run
    code, out = run_replay(mmu, script, image)
    pdb = out[-1]["pdb"]
    code, stdout, _ = run_inspect("--mmu", mmu, "--image", image, "--pdb", pdb, "--json")
    runs, _ = runs_of(stdout)
    expected = [
        {"va": "0x200000", "size": 0x410000, "state": "mapped", "pa": "0x1000000",
         "page_size": 65536, "aperture": "vram", "read_only": False},
        {"va": "0x610000", "size": 0x10000, "state": "mapped", "pa": "0x1410000",
         "page_size": 65536, "aperture": "vram", "read_only": True},
        {"va": "0x10000000", "size": 0x3000, "state": "mapped", "pa": "0x2000000",
         "page_size": 4096, "aperture": "vram", "read_only": False},
        {"va": "0x40000000", "size": 0x410000, "state": "sparse"},
    ]
    check(f"{mmu}-coalesced", code == 0 and runs == expected, f"{runs}")
    code, stdout, _ = run_inspect("--mmu", mmu, "--image", image, "--pdb", pdb, "--json",
                                  "--va", "0x300000:0x10001000")
    runs, totals = runs_of(stdout)
    check(f"{mmu}-va-limit", code == 0 and [r["va"] for r in runs] ==
          ["0x300000", "0x610000", "0x10000000"] and runs[0]["size"] == 0x310000, f"{runs}")
    svg = os.path.join(workdir, f"{mmu}.svg")
    code, _, _ = run_inspect("--mmu", mmu, "--image", image, "--pdb", pdb, "--svg", svg)
    try:
        root = ET.parse(svg).getroot()
        rects = root.findall("{http://www.w3.org/2000/svg}rect")
        svg_ok = code == 0 and root.tag.endswith("svg") and len(rects) > 10
    except (ET.ParseError, OSError) as error:
        svg_ok, rects = False, error
    check(f"{mmu}-svg", svg_ok, f"rc={code} {rects}")

    # 3. Corrupt images: exit 1, one message naming the VA and the table.
    with open(image, "rb") as f:
        pristine = bytearray(f.read())
    root_at = int(pdb, 16)

    def corrupt(name, offset, word, expect_in_message):
        damaged = bytearray(pristine)
        damaged[offset:offset + 8] = struct.pack("<Q", word)
        path = os.path.join(workdir, f"{mmu}-{name}.img")
        with open(path, "wb") as f:
            f.write(damaged)
        code, _, stderr = run_inspect("--mmu", mmu, "--image", path, "--pdb", pdb)
        ok = code == 1 and "VA 0x" in stderr and "table 0x" in stderr and \
            all(part in stderr for part in expect_in_message) and stderr.count("\n") == 1
        check(f"{mmu}-corrupt-{name}", ok, f"rc={code} {stderr}")

    # The root's entry 0 holds the path to VA 0: point it past the image. A PDE with the
    # video aperture (code 1 in bits 2:1) and address 64 GiB: v2 keeps the address >> 12
    # from bit 8, v3 in place.
    def pde_to(address):
        return (1 << 1) | (address >> 4 if mmu == "v2" else address)

    pde_past = pde_to(64 * GIB)
    corrupt("pointer-past-image", root_at, pde_past, ["outside the memory", "out_of_range"])
    # ... at the root itself: a loop.
    pde_loop = pde_to(root_at)
    corrupt("loop", root_at, pde_loop, ["reached twice", "overlap"])
    # ... a word with undefined bits (v2 PDE bits 63:33 with a video aperture; v3 63:52).
    original = struct.unpack("<Q", pristine[root_at:root_at + 8])[0]
    corrupt("undefined-bits", root_at, original | (1 << 62), ["undefined", "malformed_record"])
    # A truncated image: the root lies past its end.
    short = os.path.join(workdir, f"{mmu}-short.img")
    with open(short, "wb") as f:
        f.write(pristine[:root_at])
    code, _, stderr = run_inspect("--mmu", mmu, "--image", short, "--pdb", pdb)
    check(f"{mmu}-truncated", code == 1 and "outside the memory" in stderr, f"rc={code} {stderr}")
    code, _, stderr = run_inspect("--mmu", mmu, "--image", image, "--pdb", hex(root_at + 0x100))
    check(f"{mmu}-misaligned-pdb", code == 1 and "not aligned" in stderr, f"rc={code} {stderr}")

# 4. Bad arguments: exit 2, usage on stderr, nothing on stdout.
image = os.path.join(workdir, "v2-known.img")
for args in (["--mmu", "v4", "--image", image, "--pdb", "0"],
             ["--mmu", "v2", "--image", image],
             ["--mmu", "v2", "--pdb", "0"],
             ["--mmu", "v2", "--image", image, "--pdb", "zz"],
             ["--mmu", "v2", "--image", image, "--pdb", "0x"],
             ["--mmu", "v2", "--image", image, "--pdb", "0", "--va", "5:3"],
             ["--mmu", "v2", "--image", image, "--pdb", "0", "--va", "0:0x4000000000000"],
             ["--mmu", "v2", "--image", image, "--pdb", "0", "--frob"],
             ["--mmu", "v2", "--image", os.path.join(workdir, "missing.img"), "--pdb", "0"],
             ["--mmu", "v2", "--image", image, "--pdb"]):
    code, stdout, stderr = run_inspect(*args)
    check("bad-args " + " ".join(args[-2:]), code == 2 and stdout == "" and "usage:" in stderr,
          f"rc={code} {stdout!r} {stderr!r}")

# 5. gpummu-demo --svg: the BAR1 tree above the VRAM map.
if len(sys.argv) > 3:
    picture = os.path.join(workdir, "demo.svg")
    done = subprocess.run([sys.argv[3], "--chip", "gh100", "--vram", "64M", "--buffer", "16M",
                           "--svg", picture], capture_output=True, text=True)
    try:
        root = ET.parse(picture).getroot()
        rects = root.findall("{http://www.w3.org/2000/svg}rect")
        titles = [t.text for t in root.iter("{http://www.w3.org/2000/svg}title")]
        colours = {r.get("fill") for r in rects}
        squares = sum(round((float(r.get("width")) + 1) / 10) for r in rects
                      if r.get("height") == "9")
        ok = (done.returncode == 0 and squares == 4096 and any("PD4" in (t or "") for t in titles)
              and {"#3a9a4a", "#d65f5f", "#9e9e9e"} <= colours)
    except (ET.ParseError, OSError) as error:
        ok, rects = False, error
    check("demo-svg", ok, f"rc={done.returncode} {done.stdout[-300:]} {done.stderr}")

# 6. Every picture renders: the tools' own and the committed ones.
if len(sys.argv) > 5:
    rsvg, source_root = sys.argv[4], sys.argv[5]
    pictures = [os.path.join(workdir, name) for name in sorted(os.listdir(workdir))
                if name.endswith(".svg")]
    pictures += sorted(os.path.join(source_root, "docs", "img", name)
                       for name in os.listdir(os.path.join(source_root, "docs", "img"))
                       if name.endswith(".svg"))
    check("svg-pictures-found", len(pictures) >= 4, f"{pictures}")
    for picture in pictures:
        png = os.path.join(workdir, os.path.basename(picture) + ".render.png")
        done = subprocess.run([rsvg, "-o", png, picture], capture_output=True, text=True)
        ok = done.returncode == 0 and os.path.exists(png)
        if ok:
            with open(png, "rb") as f:
                header = f.read(24)
            width, height = struct.unpack(">II", header[16:24])
            root = ET.parse(picture).getroot()
            ok = (header[:8] == b"\x89PNG\r\n\x1a\n" and
                  width == round(float(root.get("width"))) and
                  height == round(float(root.get("height"))))
        check("renders " + os.path.basename(picture), ok, f"{done.stderr}")

print(f"inspect cli: {passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
