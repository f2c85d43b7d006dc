#!/usr/bin/env python3
"""Every ```cpp block of README.md and docs/*.md compiles in a test.

- A block with `int main` is a whole program: it is compiled with the C++ compiler given
  (-std=c++20 -Wall -Wextra -Werror, include/ on the path) and run; it must exit 0.
- Every other block is a fragment that needs its surroundings: each of its statements
  (comments dropped, whitespace normalised, split at `;`) must appear in
  tests/unit/test_readme_examples.cpp, which compiles them in context and checks the values
  the comments promise.

usage: test_doc_snippets.py SOURCE_ROOT CXX [CXX ARGS...]"""
import atexit
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile

root, compiler = sys.argv[1], sys.argv[2:]
failed = checked = 0


def normalise(code):
    code = re.sub(r"//[^\n]*", "", code)
    code = re.sub(r"(?m)^\s*#.*$", lambda m: m.group(0).strip() + ";", code)  # a directive: one statement
    code = re.sub(r"\s+", " ", code)
    return re.sub(r"([({\[]) | ([)}\]])", lambda m: m.group(1) or m.group(2), code).strip()


test_text = normalise(open(os.path.join(root, "tests/unit/test_readme_examples.cpp")).read())
documents = [os.path.join(root, "README.md")] + sorted(glob.glob(os.path.join(root, "docs/*.md")))
workdir = tempfile.mkdtemp(prefix="gpummu-doc-snippets.")
atexit.register(shutil.rmtree, workdir, ignore_errors=True)
for document in documents:
    text = open(document).read()
    for index, block in enumerate(re.findall(r"```cpp\n(.*?)```", text, re.S)):
        name = f"{os.path.relpath(document, root)} block {index + 1}"
        checked += 1
        if re.search(r"\bint main\b", block):
            source = os.path.join(workdir, f"snippet{checked}.cpp")
            program = os.path.join(workdir, f"snippet{checked}")
            with open(source, "w") as f:
                f.write(block)
            built = subprocess.run(compiler + ["-std=c++20", "-Wall", "-Wextra", "-Werror",
                                               "-I", os.path.join(root, "include"), source,
                                               "-o", program], capture_output=True, text=True)
            if built.returncode != 0:
                failed += 1
                print(f"FAIL {name}: does not compile\n{built.stderr[:3000]}")
                continue
            ran = subprocess.run([program], capture_output=True, text=True)
            if ran.returncode != 0:
                failed += 1
                print(f"FAIL {name}: exits {ran.returncode}\n{ran.stdout}{ran.stderr}")
            continue
        missing = [s.strip() for s in normalise(block).split(";")
                   if s.strip() and s.strip() not in test_text]
        if missing:
            failed += 1
            print(f"FAIL {name}: not in tests/unit/test_readme_examples.cpp: {missing[:3]}")
print(f"doc snippets: {checked - failed} of {checked} compile in a test")
sys.exit(1 if failed else 0)
