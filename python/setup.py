"""Builds the streamingllm Python module: setuptools drives the repository's CMake build.

The extension streamingllm._streamingllm is the CMake target `_streamingllm` of the main project
(configured with -DSLLM_BUILD_PYTHON=ON), so it links the same static libraries as the CLI.

Build directory: $SLLM_BUILD_DIR if set; else build/release when it is configured (the tree
`cmake --preset release` made: only the extension is built on top of it); else a minimal
build/python (library only, no tests or apps). Offline install into a venv, from the repo root:

    /usr/bin/python3 -m venv --system-site-packages build/venv
    build/venv/bin/pip install --no-build-isolation --no-index ./python
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


class CMakeExtension(Extension):
    def __init__(self, name):
        super().__init__(name, sources=[])


class CMakeBuild(build_ext):
    def build_extension(self, ext):
        if not (REPO / "CMakeLists.txt").is_file() or not (REPO / "include/streamingllm").is_dir():
            raise RuntimeError(
                f"streamingllm: {REPO} is not the streamingllm repository; install from the "
                "repository (pip install ./python), not from a copy of python/ alone")
        env_dir = os.environ.get("SLLM_BUILD_DIR")
        if env_dir:
            build = Path(env_dir).resolve()
        elif (REPO / "build/release/CMakeCache.txt").is_file():
            build = REPO / "build/release"
        else:
            build = REPO / "build/python"
        jobs = os.environ.get("SLLM_BUILD_JOBS", "2")
        # The interpreter a venv was made from: it outlives the venv, and the build tree may be
        # shared by several venvs of the same Python.
        python = getattr(sys, "_base_executable", None) or sys.executable
        configure = ["cmake", "-S", str(REPO), "-B", str(build), "-DSLLM_BUILD_PYTHON=ON",
                     f"-DPython3_EXECUTABLE={python}"]
        if not (build / "CMakeCache.txt").is_file():
            configure += ["-DCMAKE_BUILD_TYPE=Release", "-DSLLM_BUILD_TESTS=OFF",
                          "-DSLLM_BUILD_BENCH=OFF", "-DSLLM_BUILD_APPS=OFF"]
            if shutil.which("ninja"):
                configure += ["-G", "Ninja"]
            if shutil.which("ccache"):
                configure += ["-DCMAKE_CXX_COMPILER_LAUNCHER=ccache"]
        subprocess.run(configure, check=True)
        subprocess.run(["cmake", "--build", str(build), "--target", "_streamingllm", "-j", jobs],
                       check=True)
        built = list((build / "python").glob("_streamingllm*.so"))
        if len(built) != 1:
            raise RuntimeError(f"streamingllm: expected one _streamingllm*.so in {build}/python, "
                               f"found {built}")
        target = Path(self.get_ext_fullpath(ext.name))
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(built[0], target)


setup(
    name="streamingllm",
    version="0.2.0",
    description="StreamingLLM inference (attention sinks + rolling KV cache), "
                "llama-cpp-python style",
    packages=["streamingllm"],
    ext_modules=[CMakeExtension("streamingllm._streamingllm")],
    cmdclass={"build_ext": CMakeBuild},
    python_requires=">=3.9",
    install_requires=["numpy"],
    zip_safe=False,
)
