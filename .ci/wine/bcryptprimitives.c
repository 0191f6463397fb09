/*
 * A stand-in for Windows' bcryptprimitives.dll, for running Rust test binaries under Wine 8.
 *
 * Rust's std (1.78 and later) gets its random bytes (HashMap seeds) from ProcessPrng in bcryptprimitives.dll,
 * which Windows 10+ has and Wine 8.0 (Debian 12's) does not: without it a test binary exits with status 53
 * before main. This DLL exports ProcessPrng and fills the buffer from RtlGenRandom (advapi32's SystemFunction036),
 * which Wine has. Built by .ci/windows with x86_64-w64-mingw32-gcc -shared and copied into the Wine prefix's
 * system32; never shipped with the crate.
 */
#include <windows.h>

/* RtlGenRandom is exported by advapi32 under the name SystemFunction036. */
BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length)
{
    while (length > 0) {
        ULONG chunk = length > 0x40000000 ? 0x40000000 : (ULONG)length;
        if (!SystemFunction036(data, chunk)) {
            return FALSE;
        }
        data += chunk;
        length -= chunk;
    }
    return TRUE;
}
