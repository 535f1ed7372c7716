package auth

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// secretName matches a name that holds a secret or a value derived from
// one (tokens, MACs, one-time codes, passwords, keys, signatures), or a
// function that handles one (CheckPassword, csrfOK).
var secretName = regexp.MustCompile(`(?i:token|secret|csrf|totp|passw)|^(?i:tok|mac|sig|code|key)$|[a-z](Mac|Code|Key|Sig)$`)

// notSecret are comparisons the scan flags whose values are not secret,
// each with the reason.
var notSecret = map[string]string{
	"internal/config/config.go:keyLine:current~key":                            "TOML table names, while finding the line of a config key",
	"internal/deliver/client.go:expect:code~want":                              "SMTP reply codes from a remote server",
	"internal/deliver/client.go:reply:n~code":                                  "SMTP reply codes from a remote server",
	"internal/dlp/scan.go:letters:class.tok~cDigit":                            "character classes of a text token being scanned",
	"internal/dlp/scan.go:letters:class.tok~cUpper":                            "character classes of a text token being scanned",
	"internal/web/csrf.go:csrfOK:u.Host~r.Host":                                "the Origin header's host against the request's Host",
	"internal/cms/decrypt.go:openContent:int64.len.mac~icv":                    "the length of a GCM tag against the ICV length the message declares",
	"internal/config/smime.go:validateSMIME:s.SignCert~s.SignKey":              "whether two file-name settings are both empty",
	"internal/store/storetest/storetest.go:testTakeOver:got.Token~first.Token": "lease fencing tokens (counters, not credentials) in the conformance suite",
	"internal/mailauth/dkim/stream.go:VerifyHeader:got~r.Sig.BodyHash":         "a message's body hash against the DKIM signature's bh= (both public)",
	"internal/tlspolicy/tlspolicy.go:Key:h.Mode~ModeDANE":                      "a TLS policy mode, for the connection pool's key",
	"internal/tlspolicy/tlspolicy.go:Key:h.Mode~ModeMTASTS":                    "a TLS policy mode, for the connection pool's key",
	"internal/tlspolicy/tlspolicy.go:Key:h.Mode~ModeRequired":                  "a TLS policy mode, for the connection pool's key",
}

// TestSecretsComparedInConstantTime scans the production code for a
// comparison with == or != (or bytes.Equal) of two computed values where
// one is named like a secret. Such a comparison returns as soon as a byte
// differs, so its timing tells an attacker how much of a guess was right;
// secrets are compared with crypto/subtle or hmac.Equal (STYLE.md).
// Comparing with a constant (an empty string, a status code) is not
// flagged.
func TestSecretsComparedInConstantTime(t *testing.T) {
	var files []string
	for _, root := range []string{"../../internal", "../../cmd"} {
		filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() && strings.HasSuffix(p, ".go") && !strings.HasSuffix(p, "_test.go") {
				files = append(files, p)
			}
			return nil
		})
	}
	if len(files) < 50 {
		t.Fatalf("found only %d source files", len(files))
	}
	fset := token.NewFileSet()
	found := 0
	for _, f := range files {
		af, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		pkgs := map[string]bool{}
		for _, im := range af.Imports {
			name := strings.Trim(im.Path.Value, `"`)
			name = name[strings.LastIndex(name, "/")+1:]
			if im.Name != nil {
				name = im.Name.Name
			}
			pkgs[name] = true
		}
		for _, decl := range af.Decls {
			fd, ok := decl.(*ast.FuncDecl)
			if !ok || fd.Body == nil {
				continue
			}
			ast.Inspect(fd.Body, func(n ast.Node) bool {
				x, y := compared(n)
				if x == nil || constant(x, pkgs) || constant(y, pkgs) {
					return true
				}
				names := append(idents(x), idents(y)...)
				names = append(names, fd.Name.Name)
				secret := ""
				for _, nm := range names {
					if secretName.MatchString(nm) {
						secret = nm
						break
					}
				}
				if secret == "" {
					return true
				}
				pos := fset.Position(n.Pos())
				rel := strings.TrimPrefix(filepath.ToSlash(pos.Filename), "../../")
				where := rel + ":" + fd.Name.Name + ":" + strings.Join(idents(x), ".") + "~" + strings.Join(idents(y), ".")
				found++
				if _, ok := notSecret[where]; !ok {
					t.Errorf("%s:%d: %q compares %s in variable time (the name %q says it is secret); use hmac.Equal or subtle.ConstantTimeCompare, or add it to notSecret with the reason", rel, pos.Line, where, "==", secret)
				}
				return true
			})
		}
	}
	t.Logf("%d flagged comparisons, %d allowed", found, len(notSecret))
}

// constant reports whether e is a literal, nil, a name from another
// package (html.ErrorToken, syscall.SIGHUP), or len/cap of something:
// comparisons with those leak nothing secret.
func constant(e ast.Expr, pkgs map[string]bool) bool {
	switch e := e.(type) {
	case *ast.SelectorExpr:
		id, ok := e.X.(*ast.Ident)
		return ok && pkgs[id.Name]
	case *ast.BasicLit:
		return true
	case *ast.Ident:
		return e.Name == "nil" || e.Name == "true" || e.Name == "false" || e.Name == "iota"
	case *ast.CallExpr:
		if id, ok := e.Fun.(*ast.Ident); ok && (id.Name == "len" || id.Name == "cap") {
			return true
		}
	case *ast.UnaryExpr:
		return constant(e.X, pkgs)
	case *ast.ParenExpr:
		return constant(e.X, pkgs)
	}
	return false
}

// compared returns the operands of a comparison with == or != or of a
// bytes.Equal call, or nils.
func compared(n ast.Node) (x, y ast.Expr) {
	switch n := n.(type) {
	case *ast.BinaryExpr:
		if n.Op == token.EQL || n.Op == token.NEQ {
			return n.X, n.Y
		}
	case *ast.CallExpr:
		if sel, ok := n.Fun.(*ast.SelectorExpr); ok && len(n.Args) == 2 {
			if id, ok := sel.X.(*ast.Ident); ok && id.Name == "bytes" && sel.Sel.Name == "Equal" {
				return n.Args[0], n.Args[1]
			}
		}
	}
	return nil, nil
}

// idents lists the identifiers in e, in order.
func idents(e ast.Expr) []string {
	var out []string
	ast.Inspect(e, func(n ast.Node) bool {
		if id, ok := n.(*ast.Ident); ok {
			out = append(out, id.Name)
		}
		return true
	})
	return out
}
