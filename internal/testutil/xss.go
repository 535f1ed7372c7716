package testutil

import (
	"strings"

	"golang.org/x/net/html"
)

// UnsafeHTML returns why s is not safe to show as message HTML, or "" when
// it is: an element that runs script or loads a document, an event-handler
// attribute, a javascript:/vbscript:/data: URL, or CSS that runs or loads
// something. It judges a sanitiser's output; the portal's own tests and the
// gateway's HTTP tests share it, so both hold the output to one standard.
func UnsafeHTML(s string) string {
	z := html.NewTokenizer(strings.NewReader(s))
	for {
		tt := z.Next()
		if tt == html.ErrorToken {
			return ""
		}
		if tt != html.StartTagToken && tt != html.SelfClosingTagToken {
			continue
		}
		tok := z.Token()
		switch tok.Data {
		case "script", "iframe", "object", "embed", "base", "form", "frame", "frameset", "applet", "link", "style", "svg", "math", "input", "button", "textarea", "select":
			return "element " + tok.Data
		case "meta":
			for _, a := range tok.Attr {
				if strings.EqualFold(a.Key, "http-equiv") {
					return "meta http-equiv"
				}
			}
		}
		for _, a := range tok.Attr {
			k := strings.ToLower(a.Key)
			v := strings.ToLower(strings.Join(strings.Fields(a.Val), ""))
			if strings.HasPrefix(k, "on") {
				return "attribute " + k
			}
			switch k {
			case "href", "src", "action", "formaction", "xlink:href", "background", "srcset", "poster", "dynsrc", "lowsrc":
				if strings.HasPrefix(v, "javascript:") || strings.HasPrefix(v, "vbscript:") || strings.HasPrefix(v, "data:") {
					return k + "=" + v
				}
			case "style":
				if strings.Contains(v, "expression(") || strings.Contains(v, "behavior") || strings.Contains(v, "url(") || strings.Contains(v, "@import") {
					return "style " + v
				}
			}
		}
	}
}
