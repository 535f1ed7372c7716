package attach

import (
	"strings"
	"unicode"
)

// dangerousExt are extensions Windows, macOS or Office run or mount when
// opened (the lists of Microsoft's "Unsafe attachments" in Outlook and
// Defender's common attachment filter, plus disk images and OneNote).
var dangerousExt = map[string]string{
	".exe": Executable, ".com": Executable, ".scr": Executable, ".pif": Executable, ".cpl": Executable,
	".msi": Executable, ".msix": Executable, ".msp": Executable, ".appx": Executable, ".appxbundle": Executable,
	".dll": Executable, ".sys": Executable, ".jar": Executable, ".xll": Executable, ".gadget": Executable,
	".application": Executable, ".elf": Executable, ".dmg": DiskImage,
	".js": Script, ".jse": Script, ".vbs": Script, ".vbe": Script, ".wsf": Script, ".wsh": Script, ".ws": Script,
	".wsc": Script, ".sct": Script, ".ps1": Script, ".psm1": Script, ".psd1": Script, ".ps1xml": Script,
	".bat": Script, ".cmd": Script, ".sh": Script, ".reg": Script, ".inf": Script, ".msc": Script, ".msh": Script,
	".chm": Script, ".scf": Script, ".vb": Script, ".py": Script, ".pyw": Script, ".url": Shortcut,
	".lnk": Shortcut, ".iso": DiskImage, ".img": DiskImage, ".vhd": DiskImage, ".vhdx": DiskImage, ".udf": DiskImage,
	".one": OneNote, ".onepkg": OneNote, ".hta": HTA,
	".docm": Macro, ".dotm": Macro, ".xlsm": Macro, ".xltm": Macro, ".xlam": Macro, ".pptm": Macro,
	".potm": Macro, ".ppam": Macro, ".ppsm": Macro, ".sldm": Macro,
}

// lureExt are the extensions a double-extension name pretends to have.
var lureExt = map[string]bool{
	".pdf": true, ".doc": true, ".docx": true, ".xls": true, ".xlsx": true, ".ppt": true, ".pptx": true,
	".txt": true, ".jpg": true, ".jpeg": true, ".png": true, ".gif": true, ".csv": true, ".rtf": true,
	".zip": true, ".mp3": true, ".mp4": true, ".htm": true, ".html": true, ".odt": true, ".eml": true,
}

// checkName says whether a filename is dangerous in itself: an extension
// that runs, a lure extension before it ("invoice.pdf.exe", also with
// spaces or dots hiding the real one), or a name disguised with
// bidirectional controls (U+202E turns "fdp.exe" into "exe.pdf" on screen).
func checkName(name string) (string, string) {
	for _, r := range name {
		if r == '\u202e' || r == '\u202d' || r == '\u2066' || r == '\u2067' || r == '\u2068' || r == '\u200f' || r == '\u061c' {
			return DangerousName, "filename with a bidirectional control character, which shows a false extension"
		}
		if unicode.IsControl(r) {
			return DangerousName, "filename with a control character"
		}
	}
	e := ext(name)
	kind, bad := dangerousExt[e]
	if !bad {
		return "", ""
	}
	base := strings.TrimRight(strings.ReplaceAll(name, "\\", "/"), ". \t")
	if i := strings.LastIndex(base, "/"); i >= 0 {
		base = base[i+1:]
	}
	inner := strings.TrimRight(base[:len(base)-len(e)], ". \t_")
	if lureExt[ext(inner)] {
		return DoubleExt, "double extension: " + base + " looks like a " + ext(inner) + " but is a " + e
	}
	return kind, "the name ends in " + e + ", which runs or mounts when opened"
}
