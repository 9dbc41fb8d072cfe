/*
 * A small JSON checker: the fuzzing target of ptscope's edge-coverage
 * benchmark and demo (bench/edges.ts, tools/fuzz-demo.ts). It reads one
 * document from stdin (at most 4 KiB), parses it by recursive descent and
 * prints what it found. Its branches depend on the input byte by byte, as a
 * fuzzer's target's do: nesting, string escapes (\uXXXX included),
 * numbers with fraction and exponent, literals, and a few keys it treats
 * specially ("version", "tags", "limits").
 *
 * Build: gcc -O1 -no-pie -o json_check corpus/fuzz/json_check.c
 */
#include <stdio.h>
#include <string.h>

#define MAX_INPUT 4096
#define MAX_DEPTH 32

static char text[MAX_INPUT + 1];
static size_t len, pos;
static int depth, objects, arrays, strings, numbers, literals, escapes;
static int version = -1, tags, limits;

static int peek(void) { return pos < len ? (unsigned char)text[pos] : -1; }

static void skip_space(void)
{
	while (pos < len && (text[pos] == ' ' || text[pos] == '\n' || text[pos] == '\t' || text[pos] == '\r'))
		pos++;
}

static int hex_digit(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* A string; its text (escapes decoded, truncated) goes to out. */
static int parse_string(char *out, size_t cap)
{
	size_t n = 0;

	if (peek() != '"')
		return 0;
	pos++;
	for (;;) {
		int c = peek();

		if (c < 0 || c < 0x20)
			return 0;
		pos++;
		if (c == '"')
			break;
		if (c == '\\') {
			escapes++;
			c = peek();
			pos++;
			switch (c) {
			case '"': case '\\': case '/':
				break;
			case 'b': c = '\b'; break;
			case 'f': c = '\f'; break;
			case 'n': c = '\n'; break;
			case 'r': c = '\r'; break;
			case 't': c = '\t'; break;
			case 'u': {
				int v = 0, i;

				for (i = 0; i < 4; i++) {
					int d = hex_digit(peek());

					if (d < 0)
						return 0;
					v = v * 16 + d;
					pos++;
				}
				c = v < 0x80 ? v : '?';
				break;
			}
			default:
				return 0;
			}
		}
		if (n + 1 < cap)
			out[n++] = (char)c;
	}
	if (cap)
		out[n] = '\0';
	strings++;
	return 1;
}

static int parse_number(long *value)
{
	long v = 0;
	int sign = 1, digits = 0;

	if (peek() == '-') {
		sign = -1;
		pos++;
	}
	if (peek() == '0') {
		pos++;
		digits = 1;
	} else {
		while (peek() >= '0' && peek() <= '9') {
			v = v * 10 + (peek() - '0');
			pos++;
			digits++;
		}
	}
	if (!digits)
		return 0;
	if (peek() == '.') {
		pos++;
		if (!(peek() >= '0' && peek() <= '9'))
			return 0;
		while (peek() >= '0' && peek() <= '9')
			pos++;
	}
	if (peek() == 'e' || peek() == 'E') {
		pos++;
		if (peek() == '+' || peek() == '-')
			pos++;
		if (!(peek() >= '0' && peek() <= '9'))
			return 0;
		while (peek() >= '0' && peek() <= '9')
			pos++;
	}
	*value = sign * v;
	numbers++;
	return 1;
}

static int parse_literal(const char *word)
{
	size_t n = strlen(word);

	if (len - pos < n || memcmp(text + pos, word, n) != 0)
		return 0;
	pos += n;
	literals++;
	return 1;
}

static int parse_value(const char *key);

static int parse_array(const char *key)
{
	int items = 0;

	pos++;
	arrays++;
	skip_space();
	if (peek() == ']') {
		pos++;
		return 1;
	}
	for (;;) {
		skip_space();
		if (!parse_value(NULL))
			return 0;
		items++;
		skip_space();
		if (peek() == ',') {
			pos++;
			continue;
		}
		if (peek() != ']')
			return 0;
		pos++;
		break;
	}
	if (key && strcmp(key, "tags") == 0)
		tags += items;
	return 1;
}

static int parse_object(void)
{
	char key[32];

	pos++;
	objects++;
	skip_space();
	if (peek() == '}') {
		pos++;
		return 1;
	}
	for (;;) {
		skip_space();
		if (!parse_string(key, sizeof(key)))
			return 0;
		skip_space();
		if (peek() != ':')
			return 0;
		pos++;
		skip_space();
		if (!parse_value(key))
			return 0;
		skip_space();
		if (peek() == ',') {
			pos++;
			continue;
		}
		if (peek() != '}')
			return 0;
		pos++;
		return 1;
	}
}

static int parse_value(const char *key)
{
	char scratch[64];
	long number;
	int ok;

	if (++depth > MAX_DEPTH)
		return 0;
	skip_space();
	switch (peek()) {
	case '{':
		ok = parse_object();
		if (ok && key && strcmp(key, "limits") == 0)
			limits++;
		break;
	case '[':
		ok = parse_array(key);
		break;
	case '"':
		ok = parse_string(scratch, sizeof(scratch));
		break;
	case 't':
		ok = parse_literal("true");
		break;
	case 'f':
		ok = parse_literal("false");
		break;
	case 'n':
		ok = parse_literal("null");
		break;
	default:
		ok = parse_number(&number);
		if (ok && key && strcmp(key, "version") == 0)
			version = (int)number;
		break;
	}
	depth--;
	return ok;
}

int main(void)
{
	len = fread(text, 1, MAX_INPUT, stdin);
	text[len] = '\0';
	pos = 0;
	if (!parse_value(NULL)) {
		printf("invalid at byte %zu\n", pos);
		return 1;
	}
	skip_space();
	if (pos != len) {
		printf("trailing data at byte %zu\n", pos);
		return 1;
	}
	printf("valid: %d objects, %d arrays, %d strings, %d numbers, %d literals, %d escapes",
	       objects, arrays, strings, numbers, literals, escapes);
	if (version >= 0)
		printf(", version %d", version);
	if (tags)
		printf(", %d tags", tags);
	if (limits)
		printf(", limits");
	printf("\n");
	return 0;
}
