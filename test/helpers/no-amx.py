#!/usr/bin/env python3
"""Runs a command with the AMX tile state refused to it (and its children).

node-llama-cpp 3.21.1's prebuilt llama.cpp takes its AMX kernels on a CPU that has them, and
there it aborts on some models (GGML_ASSERT(*cur_backend_id != -1): its AMX buffer holds 3-D
weights its operations then cannot run). A seccomp filter makes Linux refuse the process the
tile state (arch_prctl ARCH_REQ_XCOMP_PERM fails with EPERM), so llama.cpp runs its AVX-512
kernels, as on any CPU without AMX.

    python3 no-amx.py COMMAND [ARGS...]
"""
import ctypes
import os
import struct
import sys

PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
AUDIT_ARCH_X86_64 = 0xC000003E
SYS_ARCH_PRCTL = 158
ARCH_REQ_XCOMP_PERM = 0x1023
LD_W_ABS, JEQ_K, RET_K = 0x20, 0x15, 0x06
ALLOW, EPERM = 0x7FFF0000, 0x00050000 | 1


def insn(code, jt, jf, k):
    return struct.pack("HBBI", code, jt, jf, k)


def main():
    if len(sys.argv) < 2:
        sys.exit("usage: no-amx.py COMMAND [ARGS...]")
    program = b"".join([
        insn(LD_W_ABS, 0, 0, 4),  # seccomp_data.arch
        insn(JEQ_K, 0, 5, AUDIT_ARCH_X86_64),
        insn(LD_W_ABS, 0, 0, 0),  # seccomp_data.nr
        insn(JEQ_K, 0, 3, SYS_ARCH_PRCTL),
        insn(LD_W_ABS, 0, 0, 16),  # low word of seccomp_data.args[0]
        insn(JEQ_K, 0, 1, ARCH_REQ_XCOMP_PERM),
        insn(RET_K, 0, 0, EPERM),
        insn(RET_K, 0, 0, ALLOW),
    ])
    libc = ctypes.CDLL(None, use_errno=True)
    filt = ctypes.create_string_buffer(program)
    fprog = struct.pack("HxxxxxxQ", len(program) // 8, ctypes.addressof(filt))
    fprog_buf = ctypes.create_string_buffer(fprog)
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 or libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, fprog_buf, 0, 0) != 0:
        sys.exit("no-amx.py: seccomp refused: " + os.strerror(ctypes.get_errno()))
    os.execvp(sys.argv[1], sys.argv[1:])


if __name__ == "__main__":
    main()
