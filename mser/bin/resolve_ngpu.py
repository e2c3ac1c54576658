"""GPUs per job for a recipe: ``auto`` -> 1 if torch sees a CUDA device, else 0; a number is
checked against the devices torch sees, failing with the fix (run.sh calls this before stage 0).

    python -m mser.bin.resolve_ngpu auto   # prints 0 or 1
"""
import sys


def resolve_ngpu(request, device_count, torch_version):
    """The number of GPUs to use, or ValueError saying how to fix the request."""
    if request == "auto":
        return min(device_count, 1)
    if not request.isdigit():
        raise ValueError(f"--ngpu {request!r}: expected auto or a number of GPUs")
    ngpu = int(request)
    if ngpu > device_count:
        cuda = (f"torch {torch_version} sees {device_count} CUDA device(s)" if device_count else
                f"torch {torch_version} sees no CUDA device (a CPU-only machine or build)")
        raise ValueError(f"--ngpu {ngpu} but {cuda}. Run on CPU with --ngpu 0 (or leave --ngpu "
                         f"auto), or install a CUDA torch: MSER_TORCH='torch==<version> "
                         f"--index-url https://download.pytorch.org/whl/cu121' bash tools/install.sh")
    return ngpu


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        sys.exit("usage: python -m mser.bin.resolve_ngpu {auto,N}")
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    try:
        print(resolve_ngpu(argv[0], count, torch.__version__))
    except ValueError as e:
        sys.exit(f"resolve_ngpu: {e}")


if __name__ == "__main__":
    main()
