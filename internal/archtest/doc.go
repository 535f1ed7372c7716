// Package archtest holds tests of the project's layout: which packages
// may import which (DESIGN.md, "Layout: where the tree goes"). It has no
// code of its own.
package archtest
