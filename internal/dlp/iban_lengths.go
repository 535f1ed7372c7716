package dlp

// ibanBBAN is the shape of each country's BBAN (ISO 13616 registry, as in
// python-stdnum's iban.dat): one letter per character, n a digit, a an
// upper-case letter, c either. Its length plus four is the IBAN's length.
var ibanBBAN = map[string]string{
	"AD": "nnnnnnnncccccccccccc",          // Andorra
	"AE": "nnnnnnnnnnnnnnnnnnn",           // United Arab Emirates (The)
	"AL": "nnnnnnnncccccccccccccccc",      // Albania
	"AT": "nnnnnnnnnnnnnnnn",              // Austria
	"AZ": "aaaacccccccccccccccccccc",      // Azerbaijan
	"BA": "nnnnnnnnnnnnnnnn",              // Bosnia and Herzegovina
	"BE": "nnnnnnnnnnnn",                  // Belgium
	"BG": "aaaannnnnncccccccc",            // Bulgaria
	"BH": "aaaacccccccccccccc",            // Bahrain
	"BI": "nnnnnnnnnnnnnnnnnnnnnnn",       // Burundi
	"BR": "nnnnnnnnnnnnnnnnnnnnnnnac",     // Brazil
	"BY": "ccccnnnncccccccccccccccc",      // Belarus
	"CH": "nnnnncccccccccccc",             // Switzerland
	"CR": "nnnnnnnnnnnnnnnnnn",            // Costa Rica
	"CY": "nnnnnnnncccccccccccccccc",      // Cyprus
	"CZ": "nnnnnnnnnnnnnnnnnnnn",          // Czechia
	"DE": "nnnnnnnnnnnnnnnnnn",            // Germany
	"DJ": "nnnnnnnnnnnnnnnnnnnnnnn",       // Djibouti
	"DK": "nnnnnnnnnnnnnn",                // Denmark
	"DO": "ccccnnnnnnnnnnnnnnnnnnnn",      // Dominican Republic
	"EE": "nnnnnnnnnnnnnnnn",              // Estonia
	"EG": "nnnnnnnnnnnnnnnnnnnnnnnnn",     // Egypt
	"ES": "nnnnnnnnnnnnnnnnnnnn",          // Spain
	"FI": "nnnnnnnnnnnnnn",                // Finland
	"FK": "aannnnnnnnnnnn",                // Falkland Islands (Malvinas)
	"FO": "nnnnnnnnnnnnnn",                // Faroe Islands
	"FR": "nnnnnnnnnncccccccccccnn",       // France
	"GB": "aaaannnnnnnnnnnnnn",            // United Kingdom
	"GE": "aannnnnnnnnnnnnnnn",            // Georgia
	"GI": "aaaaccccccccccccccc",           // Gibraltar
	"GL": "nnnnnnnnnnnnnn",                // Greenland
	"GR": "nnnnnnncccccccccccccccc",       // Greece
	"GT": "cccccccccccccccccccccccc",      // Guatemala
	"HN": "aaaannnnnnnnnnnnnnnnnnnn",      // Honduras
	"HR": "nnnnnnnnnnnnnnnnn",             // Croatia
	"HU": "nnnnnnnnnnnnnnnnnnnnnnnn",      // Hungary
	"IE": "aaaannnnnnnnnnnnnn",            // Ireland
	"IL": "nnnnnnnnnnnnnnnnnnn",           // Israel
	"IQ": "aaaannnnnnnnnnnnnnn",           // Iraq
	"IS": "nnnnnnnnnnnnnnnnnnnnnn",        // Iceland
	"IT": "annnnnnnnnncccccccccccc",       // Italy
	"JO": "aaaannnncccccccccccccccccc",    // Jordan
	"KW": "aaaacccccccccccccccccccccc",    // Kuwait
	"KZ": "nnnccccccccccccc",              // Kazakhstan
	"LB": "nnnncccccccccccccccccccc",      // Lebanon
	"LC": "aaaacccccccccccccccccccccccc",  // Saint Lucia
	"LI": "nnnnncccccccccccc",             // Liechtenstein
	"LT": "nnnnnnnnnnnnnnnn",              // Lithuania
	"LU": "nnnccccccccccccc",              // Luxembourg
	"LV": "aaaaccccccccccccc",             // Latvia
	"LY": "nnnnnnnnnnnnnnnnnnnnn",         // Libya
	"MC": "nnnnnnnnnncccccccccccnn",       // Monaco
	"MD": "cccccccccccccccccccc",          // Moldova, Republic of
	"ME": "nnnnnnnnnnnnnnnnnn",            // Montenegro
	"MK": "nnnccccccccccnn",               // North Macedonia
	"MN": "nnnnnnnnnnnnnnnn",              // Mongolia
	"MR": "nnnnnnnnnnnnnnnnnnnnnnn",       // Mauritania
	"MT": "aaaannnnncccccccccccccccccc",   // Malta
	"MU": "aaaannnnnnnnnnnnnnnnnnnaaa",    // Mauritius
	"NI": "aaaannnnnnnnnnnnnnnnnnnn",      // Nicaragua
	"NL": "aaaannnnnnnnnn",                // Netherlands (The)
	"NO": "nnnnnnnnnnn",                   // Norway
	"OM": "nnncccccccccccccccc",           // Oman
	"PK": "aaaacccccccccccccccc",          // Pakistan
	"PL": "nnnnnnnnnnnnnnnnnnnnnnnn",      // Poland
	"PS": "aaaaccccccccccccccccccccc",     // Palestine, State of
	"PT": "nnnnnnnnnnnnnnnnnnnnn",         // Portugal
	"QA": "aaaaccccccccccccccccccccc",     // Qatar
	"RO": "aaaacccccccccccccccc",          // Romania
	"RS": "nnnnnnnnnnnnnnnnnn",            // Serbia
	"RU": "nnnnnnnnnnnnnnccccccccccccccc", // Russian Federation
	"SA": "nncccccccccccccccccc",          // Saudi Arabia
	"SC": "aaaannnnnnnnnnnnnnnnnnnnaaa",   // Seychelles
	"SD": "nnnnnnnnnnnnnn",                // Sudan
	"SE": "nnnnnnnnnnnnnnnnnnnn",          // Sweden
	"SI": "nnnnnnnnnnnnnnn",               // Slovenia
	"SK": "nnnnnnnnnnnnnnnnnnnn",          // Slovakia
	"SM": "annnnnnnnnncccccccccccc",       // San Marino
	"SO": "nnnnnnnnnnnnnnnnnnn",           // Somalia
	"ST": "nnnnnnnnnnnnnnnnnnnnn",         // Sao Tome and Principe
	"SV": "aaaannnnnnnnnnnnnnnnnnnn",      // El Salvador
	"TL": "nnnnnnnnnnnnnnnnnnn",           // Timor-Leste
	"TN": "nnnnnnnnnnnnnnnnnnnn",          // Tunisia
	"TR": "nnnnnncccccccccccccccc",        // Turkiye
	"UA": "nnnnnnccccccccccccccccccc",     // Ukraine
	"VA": "nnnnnnnnnnnnnnnnnn",            // Holy See
	"VG": "aaaannnnnnnnnnnnnnnn",          // Virgin Islands (British)
	"XK": "nnnnnnnnnnnnnnnn",              // Kosovo
	"YE": "aaaannnncccccccccccccccccc",    // Yemen
}
