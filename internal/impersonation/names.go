package impersonation

import (
	"sort"
	"strings"
	"sync"
	"unicode"
)

// Names is a set of protected display names, safe for concurrent use: the
// configured ones and those learned from outbound mail.
type Names struct {
	mu    sync.RWMutex
	byKey map[string]string // normalised tokens → the name as first seen
	max   int
}

// NewNames returns a set holding names; at most max names are learned
// beyond them (0: 10000).
func NewNames(names []string, max int) *Names {
	if max <= 0 {
		max = 10000
	}
	n := &Names{byKey: map[string]string{}, max: max + len(names)}
	for _, s := range names {
		n.Add(s)
	}
	return n
}

// Add protects a display name. Names of a single short word ("IT",
// "Info") are not protected: too many senders share them.
func (n *Names) Add(name string) {
	if n == nil {
		return
	}
	k := nameKey(name)
	if k == "" {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, ok := n.byKey[k]; !ok && len(n.byKey) < n.max {
		n.byKey[k] = strings.TrimSpace(name)
	}
}

// Match returns the protected name display matches, "" for none. Word
// order, case, punctuation and look-alike characters do not matter
// ("SMITH, Jane" and "Jаne Smith" with a Cyrillic "а" match "Jane Smith");
// extra words do ("Jane Smith (CEO)" matches too).
func (n *Names) Match(display string) string {
	if n == nil {
		return ""
	}
	toks := tokens(display)
	if len(toks) == 0 {
		return ""
	}
	have := map[string]bool{}
	for _, t := range toks {
		have[t] = true
	}
	n.mu.RLock()
	defer n.mu.RUnlock()
	if name, ok := n.byKey[strings.Join(sorted(toks), " ")]; ok {
		return name
	}
	for k, name := range n.byKey {
		all := true
		for _, t := range strings.Split(k, " ") {
			all = all && have[t]
		}
		if all {
			return name
		}
	}
	return ""
}

func sorted(s []string) []string {
	s = append([]string(nil), s...)
	sort.Strings(s)
	return s
}

// tokens are the words of a name, as skeletons.
func tokens(s string) []string {
	return strings.FieldsFunc(skeleton(s), func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
}

// nameKey is the key of a protected name: its sorted tokens, "" when it
// is too weak to protect (one word shorter than 6 letters).
func nameKey(name string) string {
	t := tokens(name)
	if len(t) == 0 || len(t) == 1 && len([]rune(t[0])) < 6 {
		return ""
	}
	return strings.Join(sorted(t), " ")
}
