package docs_test

// A small evaluator for the CEL rules (x-kubernetes-validations) of our
// CRDs, so that the YAML examples in the docs are checked against them as
// the API server would check them. The API server's own CEL library
// (k8s.io/apiserver, cel-go) is not a dependency of this module.
//
// It covers the subset the CRDs use: self and its fields, has(),
// size(), timestamp(), duration(), string.matches(), the ternary operator, !, &&, ||,
// comparisons of strings, numbers and timestamps, and string, integer and
// boolean literals. Anything else is an error, so a rule written beyond the
// subset fails the test instead of passing unchecked. Transition rules
// (those that use oldSelf) only apply to updates and are not evaluated.

import (
	"cmp"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

type celToken struct {
	kind string // ident, str, int, op
	text string
}

func celLex(src string) ([]celToken, error) {
	var toks []celToken
	for i := 0; i < len(src); {
		c := src[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n':
			i++
		case c == '\'' || c == '"':
			var b strings.Builder
			j := i + 1
			for ; j < len(src) && src[j] != c; j++ {
				if src[j] == '\\' && j+1 < len(src) {
					j++
				}
				b.WriteByte(src[j])
			}
			if j >= len(src) {
				return nil, fmt.Errorf("unterminated string in %q", src)
			}
			toks = append(toks, celToken{"str", b.String()})
			i = j + 1
		case c >= '0' && c <= '9':
			j := i
			for j < len(src) && src[j] >= '0' && src[j] <= '9' {
				j++
			}
			toks = append(toks, celToken{"int", src[i:j]})
			i = j
		case c == '_' || (c|0x20 >= 'a' && c|0x20 <= 'z'):
			j := i
			for j < len(src) && (src[j] == '_' || (src[j]|0x20 >= 'a' && src[j]|0x20 <= 'z') || (src[j] >= '0' && src[j] <= '9')) {
				j++
			}
			toks = append(toks, celToken{"ident", src[i:j]})
			i = j
		default:
			two := ""
			if i+1 < len(src) {
				two = src[i : i+2]
			}
			switch two {
			case "&&", "||", "==", "!=", ">=", "<=":
				toks = append(toks, celToken{"op", two})
				i += 2
				continue
			}
			if strings.IndexByte("!()<>.?:,", c) < 0 {
				return nil, fmt.Errorf("unsupported character %q in %q", c, src)
			}
			toks = append(toks, celToken{"op", string(c)})
			i++
		}
	}
	return toks, nil
}

// celEval evaluates rule with self bound to value (decoded JSON).
func celEval(rule string, self any) (bool, error) {
	toks, err := celLex(rule)
	if err != nil {
		return false, err
	}
	p := &celParser{toks: toks, self: self}
	n, err := p.ternary()
	if err != nil {
		return false, err
	}
	if p.pos != len(p.toks) {
		return false, fmt.Errorf("unexpected %q", p.toks[p.pos].text)
	}
	v, err := n()
	if err != nil {
		return false, err
	}
	b, ok := v.(bool)
	if !ok {
		return false, fmt.Errorf("rule yields %T, not a bool", v)
	}
	return b, nil
}

// absent is the value of a field that is not set; using it is an error,
// as in CEL ("no such key").
type absent struct{ name string }

// node evaluates a parsed expression.
type node func() (any, error)

func constant(v any) node { return func() (any, error) { return v, nil } }

type celParser struct {
	toks []celToken
	pos  int
	self any
}

func (p *celParser) peek(text string) bool {
	return p.pos < len(p.toks) && p.toks[p.pos].kind == "op" && p.toks[p.pos].text == text
}

func (p *celParser) expect(text string) error {
	if !p.peek(text) {
		return fmt.Errorf("want %q at token %d", text, p.pos)
	}
	p.pos++
	return nil
}

func (p *celParser) ternary() (node, error) {
	cond, err := p.or()
	if err != nil || !p.peek("?") {
		return cond, err
	}
	p.pos++
	a, err := p.ternary()
	if err != nil {
		return nil, err
	}
	if err := p.expect(":"); err != nil {
		return nil, err
	}
	b, err := p.ternary()
	if err != nil {
		return nil, err
	}
	return func() (any, error) {
		v, err := cond()
		if err != nil {
			return nil, err
		}
		c, ok := v.(bool)
		if !ok {
			return nil, fmt.Errorf("condition is %T", v)
		}
		if c {
			return a()
		}
		return b()
	}, nil
}

// or and and follow CEL's commutative semantics: an error on one side is
// ignored when the other side decides the result.
func (p *celParser) or() (node, error) { return p.logical("||", p.and, true) }

func (p *celParser) and() (node, error) { return p.logical("&&", p.compare, false) }

func (p *celParser) logical(op string, next func() (node, error), decisive bool) (node, error) {
	left, err := next()
	if err != nil {
		return nil, err
	}
	for p.peek(op) {
		p.pos++
		right, err := next()
		if err != nil {
			return nil, err
		}
		l := left
		left = func() (any, error) {
			var firstErr error
			for _, side := range []node{l, right} {
				v, err := side()
				if err != nil {
					firstErr = err
					continue
				}
				b, ok := v.(bool)
				if !ok {
					return nil, fmt.Errorf("%s of %T", op, v)
				}
				if b == decisive {
					return decisive, nil
				}
			}
			if firstErr != nil {
				return nil, firstErr
			}
			return !decisive, nil
		}
	}
	return left, nil
}

func (p *celParser) compare() (node, error) {
	left, err := p.unary()
	if err != nil {
		return nil, err
	}
	for _, op := range []string{"==", "!=", ">=", "<=", ">", "<"} {
		if !p.peek(op) {
			continue
		}
		p.pos++
		right, err := p.unary()
		if err != nil {
			return nil, err
		}
		return func() (any, error) {
			a, err := left()
			if err != nil {
				return nil, err
			}
			b, err := right()
			if err != nil {
				return nil, err
			}
			return celCompare(op, a, b)
		}, nil
	}
	return left, nil
}

func celCompare(op string, a, b any) (bool, error) {
	if x, ok := a.(absent); ok {
		return false, fmt.Errorf("no such key: %s", x.name)
	}
	if x, ok := b.(absent); ok {
		return false, fmt.Errorf("no such key: %s", x.name)
	}
	var c int
	switch x := a.(type) {
	case string:
		y, ok := b.(string)
		if !ok {
			return false, fmt.Errorf("compare string with %T", b)
		}
		c = strings.Compare(x, y)
	case bool:
		y, ok := b.(bool)
		if !ok || (op != "==" && op != "!=") {
			return false, fmt.Errorf("compare bool with %T using %s", b, op)
		}
		if x == y {
			c = 0
		} else {
			c = 1
		}
	case int64:
		y, ok := b.(int64)
		if !ok {
			return false, fmt.Errorf("compare int with %T", b)
		}
		if x < y {
			c = -1
		} else if x > y {
			c = 1
		}
	case time.Time:
		y, ok := b.(time.Time)
		if !ok {
			return false, fmt.Errorf("compare timestamp with %T", b)
		}
		c = x.Compare(y)
	case time.Duration:
		y, ok := b.(time.Duration)
		if !ok {
			return false, fmt.Errorf("compare duration with %T", b)
		}
		c = cmp.Compare(x, y)
	default:
		return false, fmt.Errorf("compare %T", a)
	}
	switch op {
	case "==":
		return c == 0, nil
	case "!=":
		return c != 0, nil
	case ">":
		return c > 0, nil
	case "<":
		return c < 0, nil
	case ">=":
		return c >= 0, nil
	default:
		return c <= 0, nil
	}
}

func (p *celParser) unary() (node, error) {
	if p.peek("!") {
		p.pos++
		n, err := p.unary()
		if err != nil {
			return nil, err
		}
		return func() (any, error) {
			v, err := n()
			if err != nil {
				return nil, err
			}
			b, ok := v.(bool)
			if !ok {
				return nil, fmt.Errorf("! of %T", v)
			}
			return !b, nil
		}, nil
	}
	return p.postfix()
}

func (p *celParser) postfix() (node, error) {
	n, err := p.primary()
	if err != nil {
		return nil, err
	}
	for p.peek(".") {
		p.pos++
		if p.pos >= len(p.toks) || p.toks[p.pos].kind != "ident" {
			return nil, fmt.Errorf("want a name after '.'")
		}
		name := p.toks[p.pos].text
		p.pos++
		recv := n
		if !p.peek("(") {
			n = func() (any, error) {
				v, err := recv()
				if err != nil {
					return nil, err
				}
				return celField(v, name), nil
			}
			continue
		}
		if name != "matches" {
			return nil, fmt.Errorf("unsupported method %s", name)
		}
		p.pos++
		arg, err := p.ternary()
		if err != nil {
			return nil, err
		}
		if err := p.expect(")"); err != nil {
			return nil, err
		}
		n = func() (any, error) {
			v, err := recv()
			if err != nil {
				return nil, err
			}
			a, err := arg()
			if err != nil {
				return nil, err
			}
			if x, ok := v.(absent); ok {
				return nil, fmt.Errorf("no such key: %s", x.name)
			}
			s, ok1 := v.(string)
			re, ok2 := a.(string)
			if !ok1 || !ok2 {
				return nil, fmt.Errorf("matches on %T with %T", v, a)
			}
			return regexp.MatchString(re, s)
		}
	}
	return n, nil
}

func celField(v any, name string) any {
	obj, ok := v.(map[string]any)
	if !ok {
		return absent{name: name}
	}
	f, ok := obj[name]
	if !ok {
		return absent{name: name}
	}
	return f
}

func (p *celParser) primary() (node, error) {
	if p.pos >= len(p.toks) {
		return nil, fmt.Errorf("unexpected end")
	}
	t := p.toks[p.pos]
	p.pos++
	switch t.kind {
	case "str":
		return constant(t.text), nil
	case "int":
		i, err := strconv.ParseInt(t.text, 10, 64)
		return constant(i), err
	case "op":
		if t.text != "(" {
			return nil, fmt.Errorf("unexpected %q", t.text)
		}
		n, err := p.ternary()
		if err != nil {
			return nil, err
		}
		return n, p.expect(")")
	}
	switch t.text {
	case "self":
		return constant(p.self), nil
	case "true", "false":
		return constant(t.text == "true"), nil
	case "has":
		// has(x.f) tests whether x has the field f.
		if err := p.expect("("); err != nil {
			return nil, err
		}
		start := p.pos
		if _, err := p.postfix(); err != nil {
			return nil, err
		}
		end := p.pos
		if err := p.expect(")"); err != nil {
			return nil, err
		}
		if end-start < 3 || p.toks[end-2].text != "." || p.toks[end-1].kind != "ident" {
			return nil, fmt.Errorf("has() needs a field selection")
		}
		recv := &celParser{toks: p.toks[start : end-2], self: p.self}
		obj, err := recv.postfix()
		if err != nil || recv.pos != len(recv.toks) {
			return nil, fmt.Errorf("unsupported has() argument")
		}
		field := p.toks[end-1].text
		return func() (any, error) {
			v, err := obj()
			if err != nil {
				return nil, err
			}
			if x, ok := v.(absent); ok {
				return nil, fmt.Errorf("no such key: %s", x.name)
			}
			_, missing := celField(v, field).(absent)
			return !missing, nil
		}, nil
	case "size", "timestamp", "duration":
		if err := p.expect("("); err != nil {
			return nil, err
		}
		arg, err := p.ternary()
		if err != nil {
			return nil, err
		}
		if err := p.expect(")"); err != nil {
			return nil, err
		}
		fn := t.text
		return func() (any, error) {
			v, err := arg()
			if err != nil {
				return nil, err
			}
			if a, ok := v.(absent); ok {
				return nil, fmt.Errorf("no such key: %s", a.name)
			}
			if fn == "timestamp" {
				s, ok := v.(string)
				if !ok {
					return nil, fmt.Errorf("timestamp of %T", v)
				}
				return time.Parse(time.RFC3339, s)
			}
			if fn == "duration" {
				s, ok := v.(string)
				if !ok {
					return nil, fmt.Errorf("duration of %T", v)
				}
				return time.ParseDuration(s)
			}
			switch a := v.(type) {
			case string:
				return int64(len([]rune(a))), nil
			case []any:
				return int64(len(a)), nil
			case map[string]any:
				return int64(len(a)), nil
			}
			return nil, fmt.Errorf("size of %T", v)
		}, nil
	}
	return nil, fmt.Errorf("unsupported identifier %s", t.text)
}
