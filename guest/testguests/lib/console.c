/* console.c: COM1 polling output and a small printf (no floating point). */
#include "testguest.h"

#define COM1 0x3f8
#define UART_THR 0
#define UART_IER 1
#define UART_FCR 2
#define UART_LCR 3
#define UART_MCR 4
#define UART_LSR 5
#define LSR_THRE 0x20
#define LSR_TEMT 0x40

/* Polls per character before giving up on a transmitter that never empties.
 * After one time-out the UART is treated as absent and no longer waited for. */
#define SERIAL_POLL_LIMIT 100000u
static int serial_stuck;

void serial_init(void) {
  outb(COM1 + UART_IER, 0x00); /* no interrupts */
  outb(COM1 + UART_LCR, 0x80); /* DLAB */
  outb(COM1 + 0, 0x01);        /* divisor 1: 115200 baud */
  outb(COM1 + 1, 0x00);
  outb(COM1 + UART_LCR, 0x03); /* 8N1 */
  outb(COM1 + UART_FCR, 0x07); /* enable and clear FIFOs */
  outb(COM1 + UART_MCR, 0x03); /* DTR, RTS; OUT2 off: no IRQ */
}

static void wait_lsr(uint8_t bit) {
  if (serial_stuck) return;
  for (uint32_t i = 0; i < SERIAL_POLL_LIMIT; i++)
    if (inb(COM1 + UART_LSR) & bit) return;
  serial_stuck = 1;
}

static void serial_raw(char c) {
  wait_lsr(LSR_THRE);
  outb(COM1 + UART_THR, (uint8_t)c);
}

void serial_putc(char c) {
  if (c == '\n') serial_raw('\r');
  serial_raw(c);
}

void serial_flush(void) {
  wait_lsr(LSR_TEMT);
}

void puts_nonl(const char* s) {
  while (*s) serial_putc(*s++);
}

/* ---- formatting --------------------------------------------------------- */

struct sink {
  char* buf; /* NULL: serial */
  size_t size, len;
};

static void emit(struct sink* s, char c) {
  if (!s->buf)
    serial_putc(c);
  else if (s->len + 1 < s->size)
    s->buf[s->len] = c;
  s->len++;
}

static void emit_num(struct sink* s, uint64_t v, unsigned base, int upper, int neg, int width,
                     int zero, int left) {
  char tmp[24];
  int n = 0;
  const char* digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
  do {
    tmp[n++] = digits[v % base];
    v /= base;
  } while (v);
  int len = n + (neg ? 1 : 0);
  if (!left && !zero)
    for (; width > len; width--) emit(s, ' ');
  if (neg) emit(s, '-');
  if (!left && zero)
    for (; width > len; width--) emit(s, '0');
  while (n) emit(s, tmp[--n]);
  if (left)
    for (; width > len; width--) emit(s, ' ');
}

static void format(struct sink* s, const char* fmt, va_list ap) {
  for (; *fmt; fmt++) {
    if (*fmt != '%') {
      emit(s, *fmt);
      continue;
    }
    fmt++;
    int left = 0, zero = 0, width = 0, lng = 0;
    for (;; fmt++) {
      if (*fmt == '-')
        left = 1;
      else if (*fmt == '0')
        zero = 1;
      else
        break;
    }
    if (*fmt == '*') {
      width = va_arg(ap, int);
      fmt++;
    } else {
      while (*fmt >= '0' && *fmt <= '9') width = width * 10 + (*fmt++ - '0');
    }
    for (;; fmt++) {
      if (*fmt == 'l' || *fmt == 'z' || *fmt == 'j' || *fmt == 't')
        lng++;
      else if (*fmt == 'h')
        continue; /* promoted to int anyway */
      else
        break;
    }
    switch (*fmt) {
      case 'd':
      case 'i': {
        int64_t v = lng ? va_arg(ap, int64_t) : va_arg(ap, int);
        uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
        emit_num(s, u, 10, 0, v < 0, width, zero, left);
        break;
      }
      case 'u':
      case 'x':
      case 'X': {
        uint64_t v = lng ? va_arg(ap, uint64_t) : va_arg(ap, unsigned);
        emit_num(s, v, *fmt == 'u' ? 10 : 16, *fmt == 'X', 0, width, zero, left);
        break;
      }
      case 'p':
        emit(s, '0');
        emit(s, 'x');
        emit_num(s, (uint64_t)(uintptr_t)va_arg(ap, void*), 16, 0, 0, 16, 1, 0);
        break;
      case 'c':
        emit(s, (char)va_arg(ap, int));
        break;
      case 's': {
        const char* str = va_arg(ap, const char*);
        if (!str) str = "(null)";
        int len = (int)strlen(str);
        if (!left)
          for (; width > len; width--) emit(s, ' ');
        while (*str) emit(s, *str++);
        if (left)
          for (; width > len; width--) emit(s, ' ');
        break;
      }
      case '%':
        emit(s, '%');
        break;
      case '\0':
        return;
      default: /* unknown: print it verbatim */
        emit(s, '%');
        emit(s, *fmt);
        break;
    }
  }
}

int vprintf(const char* fmt, va_list ap) {
  struct sink s = {0, 0, 0};
  format(&s, fmt, ap);
  return (int)s.len;
}

int printf(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vprintf(fmt, ap);
  va_end(ap);
  return n;
}

int vsnprintf(char* buf, size_t size, const char* fmt, va_list ap) {
  struct sink s = {buf, size, 0};
  format(&s, fmt, ap);
  if (size) buf[s.len < size ? s.len : size - 1] = '\0';
  return (int)s.len;
}

int snprintf(char* buf, size_t size, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, size, fmt, ap);
  va_end(ap);
  return n;
}

void hexdump(const void* data, size_t len) {
  const uint8_t* p = data;
  for (size_t off = 0; off < len; off += 16) {
    printf("  %04lx:", off);
    for (size_t i = off; i < off + 16; i++) {
      if (i < len)
        printf(" %02x", p[i]);
      else
        printf("   ");
    }
    printf("  |");
    for (size_t i = off; i < off + 16 && i < len; i++)
      serial_putc(p[i] >= 32 && p[i] < 127 ? (char)p[i] : '.');
    printf("|\n");
  }
}

/* ---- string ------------------------------------------------------------- */

void* memset(void* dst, int c, size_t n) {
  uint8_t* d = dst;
  while (n--) *d++ = (uint8_t)c;
  return dst;
}

void* memcpy(void* dst, const void* src, size_t n) {
  uint8_t* d = dst;
  const uint8_t* s = src;
  while (n--) *d++ = *s++;
  return dst;
}

void* memmove(void* dst, const void* src, size_t n) {
  uint8_t* d = dst;
  const uint8_t* s = src;
  if (d < s) {
    while (n--) *d++ = *s++;
  } else {
    while (n--) d[n] = s[n];
  }
  return dst;
}

int memcmp(const void* a, const void* b, size_t n) {
  const uint8_t *x = a, *y = b;
  for (; n; n--, x++, y++)
    if (*x != *y) return *x - *y;
  return 0;
}

size_t strlen(const char* s) {
  size_t n = 0;
  while (s[n]) n++;
  return n;
}
