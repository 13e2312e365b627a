/*
 * Just enough JSON reading for llama.cpp reference files: whole-file read,
 * a string value by key, and a (possibly nested) number array by key,
 * flattened. Test-only; inputs are trusted reference data.
 */
#ifndef ST_REFJSON_H
#define ST_REFJSON_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *
ref_read_file(const char *path, size_t *len)
{
    FILE  *fp = fopen(path, "rb");
    char  *buf;
    long   n;

    if (fp == NULL) {
        return NULL;
    }
    fseek(fp, 0, SEEK_END);
    n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    buf = malloc((size_t) n + 1);
    if (buf == NULL || fread(buf, 1, (size_t) n, fp) != (size_t) n) {
        free(buf);
        fclose(fp);
        return NULL;
    }
    buf[n] = '\0';
    fclose(fp);
    if (len) {
        *len = (size_t) n;
    }
    return buf;
}


/* Position just after `"key":` (top-level or not: first occurrence). */
static const char *
ref_find_key(const char *json, const char *key)
{
    char        pat[128];
    const char *p;

    snprintf(pat, sizeof(pat), "\"%s\"", key);
    p = strstr(json, pat);
    if (p == NULL) {
        return NULL;
    }
    p += strlen(pat);
    while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r') {
        p++;
    }
    if (*p != ':') {
        return NULL;
    }
    return p + 1;
}


/* Decoded string value (\uXXXX for ASCII/BMP written as UTF-8). */
static char *
ref_string(const char *json, const char *key)
{
    const char *p = ref_find_key(json, key);
    char       *out, *o;

    if (p == NULL) {
        return NULL;
    }
    while (*p == ' ' || *p == '\n') {
        p++;
    }
    if (*p++ != '"') {
        return NULL;
    }
    out = o = malloc(strlen(p) + 1);
    while (*p && *p != '"') {
        if (*p == '\\') {
            p++;
            switch (*p) {
            case 'n': *o++ = '\n'; break;
            case 't': *o++ = '\t'; break;
            case 'r': *o++ = '\r'; break;
            case 'u': {
                unsigned cp = (unsigned) strtoul((char[5]){p[1], p[2], p[3],
                                                 p[4], 0}, NULL, 16);
                p += 4;
                if (cp < 0x80) {
                    *o++ = (char) cp;
                } else if (cp < 0x800) {
                    *o++ = (char) (0xc0 | (cp >> 6));
                    *o++ = (char) (0x80 | (cp & 0x3f));
                } else {
                    *o++ = (char) (0xe0 | (cp >> 12));
                    *o++ = (char) (0x80 | ((cp >> 6) & 0x3f));
                    *o++ = (char) (0x80 | (cp & 0x3f));
                }
                break;
            }
            default: *o++ = *p; break;
            }
            p++;
        } else {
            *o++ = *p++;
        }
    }
    *o = '\0';
    return out;
}


/* Flattened numbers of the array value of key; returns count or -1. */
static long
ref_numbers(const char *json, const char *key, double **out)
{
    const char *p = ref_find_key(json, key);
    long        n = 0, cap = 64, depth = 0;
    double     *v;

    *out = NULL;
    if (p == NULL) {
        return -1;
    }
    while (*p == ' ' || *p == '\n') {
        p++;
    }
    if (*p != '[') {
        return -1;
    }
    v = malloc(sizeof(double) * (size_t) cap);
    do {
        if (*p == '[') {
            depth++;
            p++;
        } else if (*p == ']') {
            depth--;
            p++;
        } else if (*p == ',' || *p == ' ' || *p == '\n' || *p == '\r') {
            p++;
        } else {
            char *end;
            double d = strtod(p, &end);
            if (end == p) {
                free(v);
                return -1;
            }
            if (n == cap) {
                cap *= 2;
                v = realloc(v, sizeof(double) * (size_t) cap);
            }
            v[n++] = d;
            p = end;
        }
    } while (depth > 0 && *p);
    *out = v;
    return n;
}

#endif /* ST_REFJSON_H */
