package stage

import "strings"

// Identity: cmissync finds its groupings and groups in Moodle by idnumber,
// never by name. The idnumber of a module's grouping is "cmis:MODULE", that
// of a CMIS group "cmis:MODULE:GROUP", with ":" and "%" inside the codes
// written %3A and %25. The escaping makes the mapping injective: module
// "A:B" group "C" and module "A" group "B:C" no longer share "cmis:A:B:C".
// Codes without ":" or "%" (almost all) get the same idnumbers as before the
// escaping was introduced; for the others, stage updates the staged idnumber
// and load updates Moodle's, recognising the legacy form meanwhile.

// OwnedPrefix starts every idnumber cmissync gives an object it owns.
const OwnedPrefix = "cmis:"

var codeEscaper = strings.NewReplacer("%", "%25", ":", "%3A")

// escapeCode writes a CMIS code for an idnumber.
func escapeCode(code string) string {
	if !strings.ContainsAny(code, "%:") {
		return code
	}
	return codeEscaper.Replace(code)
}

// GroupingIDNumber is the idnumber cmissync gives the grouping of a module.
func GroupingIDNumber(module string) string { return OwnedPrefix + escapeCode(module) }

// GroupIDNumber is the idnumber cmissync gives the group of a module.
func GroupIDNumber(module, group string) string {
	return OwnedPrefix + escapeCode(module) + ":" + escapeCode(group)
}

// LegacyGroupingIDNumber and LegacyGroupIDNumber are the idnumbers versions
// before the escaping gave the same objects. They differ from the current
// ones only for codes holding ":" or "%".
func LegacyGroupingIDNumber(module string) string { return OwnedPrefix + module }

// LegacyGroupIDNumber: see LegacyGroupingIDNumber.
func LegacyGroupIDNumber(module, group string) string { return OwnedPrefix + module + ":" + group }

// IsOwnedIDNumber reports whether an idnumber marks a cmissync object.
func IsOwnedIDNumber(idnumber string) bool { return strings.HasPrefix(idnumber, OwnedPrefix) }
