#!/usr/bin/env python3
"""The README's C++ examples compile and run as written.

    readme_snippets_test.py README LIBRARY INCLUDE_DIR -- COMPILER...

Every ```cpp block of README is a whole program: it is compiled against the public headers
(INCLUDE_DIR) and the built shared library (LIBRARY) with COMPILER (-std=c++20 -Wall -Wextra
-Werror), then run in a fresh temporary directory, and must exit 0 within two minutes. A block
that is deliberately a fragment is preceded by an HTML comment starting `<!-- fragment` (e.g.
`<!-- fragment -->`, or one that says why) and is only counted.
"""
import os
import subprocess
import sys
import tempfile

FRAGMENT = "<!-- fragment"


def snippets(readme_text):
    """(title, line, code, is_fragment) for every ```cpp block; title is the nearest heading."""
    lines = readme_text.splitlines()
    title, i, out = "(top)", 0, []
    while i < len(lines):
        line = lines[i]
        if line.startswith("#"):
            title = line.lstrip("#").strip()
        if line.strip() == "```cpp":
            start = i + 1
            end = start
            while end < len(lines) and lines[end].strip() != "```":
                end += 1
            if end == len(lines):
                raise SystemExit(f"README line {i + 1}: a ```cpp block that never closes")
            # The comment right above the block (it may span lines): where the nearest "<!--" opens.
            k = i - 1
            while k >= 0 and not lines[k].strip():
                k -= 1
            comment = ""
            if k >= 0 and lines[k].strip().endswith("-->"):
                while k >= 0 and "<!--" not in lines[k]:
                    k -= 1
                comment = lines[k].strip() if k >= 0 else ""
            out.append((title, i + 1, "\n".join(lines[start:end]) + "\n", comment.startswith(FRAGMENT)))
            i = end
        i += 1
    return out


def main():
    if len(sys.argv) < 6 or sys.argv[4] != "--":
        raise SystemExit(__doc__)
    readme, library, include_dir, compiler = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[5:]
    with open(readme, encoding="utf-8") as f:
        found = snippets(f.read())
    programs = [s for s in found if not s[3]]
    print(f"{len(found)} C++ blocks in {readme}: {len(programs)} programs, {len(found) - len(programs)} fragments")
    if not programs:
        raise SystemExit("no C++ program in the README: nothing was tested")
    failures = 0
    libdir = os.path.dirname(os.path.abspath(library))
    with tempfile.TemporaryDirectory(prefix="modelreg-readme-") as work:
        for n, (title, line, code, _) in enumerate(programs, 1):
            name = f'"{title}" (README line {line})'
            source = os.path.join(work, f"snippet{n}.cpp")
            exe = os.path.join(work, f"snippet{n}")
            with open(source, "w", encoding="utf-8") as f:
                f.write(code)
            # Boost.Serialization for the examples that define their own model type
            # (modelreg/model_serialization.hpp); harmless for the others.
            cmd = compiler + ["-std=c++20", "-Wall", "-Wextra", "-Werror", "-I", include_dir, source, "-o", exe,
                              os.path.abspath(library), f"-Wl,-rpath,{libdir}", "-lboost_serialization", "-pthread"]
            built = subprocess.run(cmd, capture_output=True, text=True)
            if built.returncode != 0:
                print(f"FAILED to compile {name}:\n{built.stderr}\n{' '.join(cmd)}")
                failures += 1
                continue
            run_dir = os.path.join(work, f"run{n}")
            os.mkdir(run_dir)
            try:
                ran = subprocess.run([exe], cwd=run_dir, capture_output=True, text=True, timeout=120)
            except subprocess.TimeoutExpired:
                print(f"FAILED: {name} did not finish within 120 s")
                failures += 1
                continue
            if ran.returncode != 0:
                print(f"FAILED: {name} exited {ran.returncode}\nstdout:\n{ran.stdout}\nstderr:\n{ran.stderr}")
                failures += 1
                continue
            print(f"ok: {name}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
