#include "names.h"

#include <string.h>

void broker_copy_whole(char *out, size_t size, const char *in)
{
    if (!size)
        return;
    size_t n = strlen(in);
    if (n >= size)
        n = 0;
    memcpy(out, in, n);
    out[n] = '\0';
}

void broker_copy_cut(char *out, size_t size, const char *in)
{
    if (!size)
        return;
    size_t n = strlen(in);
    if (n >= size) {
        n = size - 1;
        /* in[n], the first byte left out, continues a character: leave
         * out the whole character. */
        while (n > 0 && ((unsigned char)in[n] & 0xc0) == 0x80)
            n--;
    }
    memcpy(out, in, n);
    out[n] = '\0';
}
