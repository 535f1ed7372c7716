package attach

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"path"
	"strings"

	"github.com/richardlehane/mscfb"
)

// Identify says what dangerous kind data is, by content first, then by
// declared type; "" when it is none of them. mt is the declared media
// type, name the declared name (either may be empty).
func Identify(data []byte, mt, name string) (kind, reason string) {
	switch {
	case isPE(data):
		return Executable, "Windows program (PE)"
	case bytes.HasPrefix(data, []byte("MZ")) && len(data) >= 64 && bytes.IndexByte(data[:64], 0) >= 0:
		return Executable, "DOS/Windows program (MZ)"
	case bytes.HasPrefix(data, []byte("\x7fELF")):
		return Executable, "ELF program"
	case isMachO(data):
		return Executable, "Mach-O program or Java class"
	case bytes.HasPrefix(data, []byte("L\x00\x00\x00\x01\x14\x02\x00\x00\x00\x00\x00\xc0\x00\x00\x00\x00\x00\x00\x46")):
		return Shortcut, "Windows shortcut (.lnk), which can run any command"
	case bytes.HasPrefix(data, []byte("\xe4\x52\x5c\x7b\x8c\xd8\xa7\x4d\xae\xb1\x53\x78\xd0\x29\x96\xd3")):
		return OneNote, "OneNote section, which can embed files that run when clicked"
	case bytes.HasPrefix(data, []byte("MSCF")):
		return Unreadable, "Cabinet archive (.cab, .onepkg): not unpacked, so not inspected"
	}
	if k, why := diskImage(data); k != "" {
		return k, why
	}
	switch {
	case bytes.HasPrefix(data, []byte("PK\x03\x04")), bytes.HasPrefix(data, []byte("PK\x05\x06")):
		return zipKind(data)
	case bytes.HasPrefix(data, []byte("\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1")):
		return oleKind(data)
	case bytes.HasPrefix(data, []byte("7z\xbc\xaf\x27\x1c")) && sevenZipEncrypted(data):
		return Encrypted, "encrypted 7z archive: no scanner can see inside"
	case bytes.HasPrefix(data, []byte("#!")):
		return Script, "script with an interpreter line (#!)"
	case bytes.HasPrefix(bytes.TrimLeft(data, "\xef\xbb\xbf \t\r\n"), []byte("{\\rt")) && bytes.Contains(data, []byte("\\objdata")):
		return EmbeddedObject, "RTF document with an embedded object"
	}
	if isHTML(data, mt, name) {
		return htmlKind(data)
	}
	if isText(mt, data) && name != "" {
		if why := scriptText(data); why != "" {
			return Script, why
		}
	}
	return "", ""
}

// isPE: an MZ header whose e_lfanew points at "PE\0\0" (the PE/COFF
// specification, "MS-DOS Stub").
func isPE(b []byte) bool {
	if len(b) < 64 || b[0] != 'M' || b[1] != 'Z' {
		return false
	}
	off := int(binary.LittleEndian.Uint32(b[0x3c:]))
	return off > 0 && off+4 <= len(b) && string(b[off:off+4]) == "PE\x00\x00"
}

func isMachO(b []byte) bool {
	if len(b) < 8 {
		return false
	}
	switch binary.BigEndian.Uint32(b) {
	case 0xfeedface, 0xfeedfacf, 0xcefaedfe, 0xcffaedfe:
		return true
	case 0xcafebabe:
		// A universal binary or a Java class: both run.
		return true
	}
	return false
}

// diskImage recognises ISO 9660 / UDF (ECMA-119: "CD001" in the volume
// descriptors from sector 16; ECMA-167 "BEA01"), VHD (a "conectix"
// footer), VHDX ("vhdxfile"), Apple DMG ("koly" trailer) and raw disk
// images with a boot sector.
func diskImage(b []byte) (string, string) {
	for _, off := range []int{0x8001, 0x8801, 0x9001} {
		if len(b) >= off+5 {
			if v := string(b[off : off+5]); v == "CD001" || v == "BEA01" || v == "NSR02" || v == "NSR03" {
				return DiskImage, "disk image (ISO 9660/UDF)"
			}
		}
	}
	switch {
	case bytes.HasPrefix(b, []byte("conectix")), len(b) >= 512 && bytes.HasPrefix(b[len(b)-512:], []byte("conectix")):
		return DiskImage, "virtual disk (VHD)"
	case bytes.HasPrefix(b, []byte("vhdxfile")):
		return DiskImage, "virtual disk (VHDX)"
	case len(b) >= 512 && bytes.HasPrefix(b[len(b)-512:], []byte("koly")):
		return DiskImage, "Apple disk image (DMG)"
	case len(b) >= 512 && b[510] == 0x55 && b[511] == 0xaa && (b[0] == 0xeb || b[0] == 0xe9 || b[0] == 0xfa || b[0] == 0x33):
		return DiskImage, "disk image (boot sector)"
	}
	return "", ""
}

// zipKind looks into a zip for macros (OOXML keeps VBA in vbaProject.bin,
// [MS-OFFMACRO2]; Excel 4.0 macro sheets in xl/macrosheets) and for
// encrypted entries. Entries that are files of their own are visited by
// the walk, which unpacks them.
func zipKind(data []byte) (string, string) {
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return "", "" // the walk reports a corrupt archive
	}
	for _, f := range zr.File {
		n := strings.ToLower(f.Name)
		switch {
		case path.Base(n) == "vbaproject.bin", strings.HasPrefix(n, "xl/macrosheets/"), strings.HasPrefix(n, "word/vbadata"):
			return Macro, "Office document with macros (" + f.Name + ")"
		case path.Base(n) == "activex.bin" || strings.HasPrefix(path.Base(n), "activex") && strings.HasSuffix(n, ".bin"):
			return Macro, "Office document with ActiveX controls (" + f.Name + ")"
		case strings.HasPrefix(n, "word/embeddings/oleobject"), strings.HasPrefix(n, "xl/embeddings/oleobject"), strings.HasPrefix(n, "ppt/embeddings/oleobject"):
			return EmbeddedObject, "Office document with an embedded OLE object (" + f.Name + ")"
		}
		if f.Flags&0x1 != 0 {
			return Encrypted, "encrypted zip archive: no scanner can see inside"
		}
	}
	return "", ""
}

// oleKind reads an OLE compound file ([MS-CFB]): legacy Office with VBA
// ([MS-OVBA] keeps the project in a "VBA" storage under "Macros" or
// "_VBA_PROJECT_CUR"), encrypted OOXML ([MS-OFFCRYPTO]: "EncryptionInfo"
// and "EncryptedPackage" streams), Windows Installer packages and
// embedded objects.
func oleKind(data []byte) (string, string) {
	r, err := mscfb.New(bytes.NewReader(data))
	if err != nil {
		return Unreadable, "corrupt OLE compound file"
	}
	n := 0
	for e, err := r.Next(); ; e, err = r.Next() {
		if err != nil {
			break
		}
		if n++; n > 100000 {
			return Unreadable, "OLE compound file with too many entries"
		}
		switch e.Name {
		case "VBA", "_VBA_PROJECT_CUR", "_VBA_PROJECT", "Macros", "PROJECT", "PROJECTwm":
			return Macro, "Office document with VBA macros (" + strings.Join(append(append([]string{}, e.Path...), e.Name), "/") + ")"
		case "EncryptionInfo", "EncryptedPackage":
			return Encrypted, "password-protected Office document: no scanner can see inside"
		case "\x01Ole10Native", "Ole10Native":
			return EmbeddedObject, "OLE package with an embedded file"
		}
		if len(e.Path) == 0 && strings.EqualFold(e.Name, "\x05DigitalSignature") {
			continue
		}
		if strings.HasPrefix(e.Name, "\u4840") {
			// Windows Installer stream names are compressed into the
			// U+3800-U+4840 range ([MS-CFB] names, MSI database tables).
			return Executable, "Windows Installer package (MSI)"
		}
	}
	return "", ""
}

func isText(mt string, b []byte) bool {
	if strings.HasPrefix(mt, "text/") || mt == "" || mt == "application/octet-stream" {
		head := b[:min(len(b), 4096)]
		return !bytes.ContainsAny(head, "\x00")
	}
	return false
}

// scriptText recognises Windows scripts sent as text attachments.
func scriptText(b []byte) string {
	head := strings.ToLower(string(b[:min(len(b), 65536)]))
	for _, sig := range []struct{ s, why string }{
		{"wscript.shell", "Windows Script Host script"},
		{"activexobject(", "JScript with ActiveX"},
		{"createobject(", "VBScript creating objects"},
		{"powershell", "PowerShell command"},
		{"invoke-expression", "PowerShell script"},
		{"@echo off", "batch file"},
		{"<job", "Windows Script File"},
		{"mshta", "command running an HTML application"},
	} {
		if strings.Contains(head, sig.s) {
			return "script content (" + sig.why + ")"
		}
	}
	return ""
}

func isHTML(b []byte, mt, name string) bool {
	switch ext(name) {
	case ".htm", ".html", ".xhtml", ".shtml", ".mht", ".mhtml", ".svg", ".hta":
		return true
	}
	if mt == "text/html" || mt == "application/xhtml+xml" || mt == "image/svg+xml" || mt == "application/hta" {
		return true
	}
	head := bytes.ToLower(bytes.TrimLeft(b[:min(len(b), 1024)], "\xef\xbb\xbf \t\r\n"))
	return bytes.HasPrefix(head, []byte("<!doctype html")) || bytes.HasPrefix(head, []byte("<html")) || bytes.HasPrefix(head, []byte("<svg")) || bytes.HasPrefix(head, []byte("<script"))
}

// htmlKind finds HTML applications and HTML smuggling: a script that
// builds a file in the browser (a Blob and an object URL, or a data: URI)
// and downloads or opens it. Obfuscated scripts that decode a long
// string (atob) and write it to the document are counted too.
func htmlKind(b []byte) (string, string) {
	l := bytes.ToLower(b)
	if bytes.Contains(l, []byte("<hta:application")) {
		return HTA, "HTML application (HTA), which runs with the user's rights"
	}
	script := bytes.Contains(l, []byte("<script")) || bytes.Contains(l, []byte("javascript:")) || bytes.Contains(l, []byte(" on")) && bytes.Contains(l, []byte("=\"")) && bytes.Contains(l, []byte("atob("))
	blob := bytes.Contains(l, []byte("blob(")) || bytes.Contains(l, []byte("createobjecturl")) || bytes.Contains(l, []byte("mssaveoropenblob")) || bytes.Contains(l, []byte("mssaveblob"))
	dataURI := bytes.Contains(l, []byte("data:application/")) || bytes.Contains(l, []byte("data:octet")) || bytes.Contains(l, []byte("data:;base64"))
	download := bytes.Contains(l, []byte("download"))
	switch {
	case script && blob:
		return HTMLSmuggling, "HTML whose script builds a file in the browser (Blob/object URL)"
	case dataURI && download:
		return HTMLSmuggling, "HTML that downloads an embedded file (data: URI)"
	case script && bytes.Contains(l, []byte("atob(")) && (download || bytes.Contains(l, []byte("document.write")) || bytes.Contains(l, []byte("location"))):
		return HTMLSmuggling, "HTML whose script decodes and writes hidden content"
	}
	return "", ""
}

// sevenZipEncrypted says whether a 7z archive's header (found from the
// start header's next-header offset and size, 7zFormat.txt) names the AES
// coder (06 F1 07 01): encrypted files, or an encrypted header whose
// encoding info still names it.
func sevenZipEncrypted(b []byte) bool {
	if len(b) < 32 {
		return false
	}
	off := binary.LittleEndian.Uint64(b[12:])
	size := binary.LittleEndian.Uint64(b[20:])
	if off > uint64(len(b)) || size > uint64(len(b)) || 32+off+size > uint64(len(b)) {
		return false
	}
	return bytes.Contains(b[32+off:32+off+size], []byte("\x06\xf1\x07\x01"))
}
