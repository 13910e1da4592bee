#!/usr/bin/env python3
"""dockerfile_check.py - the image holds what the manifests run and what it links.

    dockerfile_check.py DOCKERFILE RENDERED.yaml BIN_DIR REPO_ROOT

No Docker engine is needed: the runtime stage's apt-get install list must
provide (directly or through Debian dependencies) the package of every
shared library the binaries need (readelf NEEDED, dpkg -S), plus the
libwebsockets event-loop plugin the gateway loads at run time; every
holdfast-* binary the manifests run must be one the build stage copies;
the runtime stage must not run as root; every top-level folder the CMake
build reads (add_subdirectory, ${PROJECT_SOURCE_DIR}/X) is copied into the
build stage and not excluded by .dockerignore. Exit 1 with one line per
problem."""
import glob
import os
import re
import subprocess
import sys

import yaml

dockerfile, rendered, bin_dir, root = sys.argv[1:5]
text = open(dockerfile).read().replace("\\\n", " ")
stages = re.split(r"^FROM ", text, flags=re.M)[1:]
build, runtime = stages[0], stages[-1]
problems = []


def install_list(stage):
    pkgs = []
    for m in re.finditer(r"apt-get install ([^&\n]*)", stage):
        pkgs += [w for w in m.group(1).split() if not w.startswith("-")]
    return pkgs


runtime_pkgs = install_list(runtime)
copied = set(re.findall(r"/build/bin/(holdfast-[a-z]+)", build))
if not re.search(r"^USER (?!0\b|root\b)\S+", runtime, re.M):
    problems.append("the runtime stage runs as root (no USER)")

run = set()
for d in yaml.safe_load_all(open(rendered)):
    if d and d["kind"] in ("Deployment", "StatefulSet", "Job"):
        spec = d["spec"]["template"]["spec"]
        for c in spec.get("initContainers", []) + spec["containers"]:
            run |= set(re.findall(r"holdfast-[a-z]+", " ".join(c.get("command", []))))
for binary in sorted(run - copied):
    problems.append(f"the manifests run {binary}, which the image does not contain")

deps = subprocess.run(
    ["apt-cache", "depends", "--recurse", "--no-recommends", "--no-suggests", "--no-conflicts",
     "--no-breaks", "--no-replaces", "--no-enhances", *runtime_pkgs],
    capture_output=True, text=True, check=True).stdout
provided = set(runtime_pkgs) | {l.strip().split(":")[-1].strip() for l in deps.splitlines()}
provided |= {"libc6"}  # in every Debian image
for binary in sorted(copied):
    elf = subprocess.run(["readelf", "-d", f"{bin_dir}/{binary}"], capture_output=True, text=True).stdout
    for lib in re.findall(r"Shared library: \[(.+?)\]", elf):
        if re.match(r"lib(asan|ubsan|lsan|tsan)\.", lib):
            continue  # a sanitizer build's runtime; the image is built without
        # dpkg -S: "pkg[:arch][, pkg...]: path" lines; any owner will do
        # (libm.so.6 is libc6's, and libc6-i386's too).
        out = subprocess.run(["dpkg", "-S", f"*/{lib}"], capture_output=True, text=True).stdout
        owners = {p.strip().split(":")[0] for line in out.splitlines()
                  for p in line.rsplit(": ", 1)[0].split(",")}
        if not owners:
            problems.append(f"{binary}: no Debian package owns {lib}")
        elif not owners & provided:
            problems.append(f"{binary}: needs {lib} ({', '.join(sorted(owners))}), "
                            "not installed in the runtime stage")
# The build's inputs: what the root CMakeLists adds and any file named
# through ${PROJECT_SOURCE_DIR} anywhere.
inputs = set(re.findall(r"^add_subdirectory\((\w+)\)", open(f"{root}/CMakeLists.txt").read(), re.M))
for cm in glob.glob(f"{root}/**/CMakeLists.txt", recursive=True):
    if os.path.relpath(cm, root).split(os.sep)[0].startswith(("build", ".")):
        continue  # build trees, .deps and the like
    inputs |= set(re.findall(r"\$\{(?:PROJECT|CMAKE)_SOURCE_DIR\}/(\w+)/", open(cm).read()))
copies = {m.split()[0].rstrip("/") for m in re.findall(r"^COPY (?!--from)(.+)$", build, re.M)}
ignore = open(os.path.join(os.path.dirname(dockerfile), ".dockerignore")).read().split("\n")
for folder in sorted(inputs):
    if folder not in copies:
        problems.append(f"the CMake build reads {folder}/, which the build stage does not COPY")
    if "*" in ignore and f"!{folder}/" not in ignore:
        problems.append(f".dockerignore excludes {folder}/, which the CMake build reads")
if "libwebsockets-evlib-uv" not in runtime_pkgs:
    problems.append("the gateway's libuv event loop (libwebsockets-evlib-uv) is not installed")

for p in problems:
    print(f"dockerfile_check: {p}")
print(f"dockerfile_check: {len(copied)} binaries, {len(runtime_pkgs)} runtime packages, {len(problems)} problems")
sys.exit(1 if problems else 0)
