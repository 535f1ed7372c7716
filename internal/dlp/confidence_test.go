package dlp

import "testing"

// TestConfidenceModel is the confidence model of the package doc, case by
// case: what raises a detector's confidence (context words, grouping),
// what lowers it or rules a match out (phone and reference words,
// surrounding digits, unallocated ranges).
func TestConfidenceModel(t *testing.T) {
	for _, c := range []struct{ text, want string }{
		// NHS number.
		{"NHS:9434765919", "uk-nhs-number/high"},              // glued to its label by a colon
		{"NHS no.9434765919", "uk-nhs-number/high"},           // by a full stop
		{"nhs number 943.476.5919", "uk-nhs-number/high"},     // dotted
		{"patient 943-476-5919", "uk-nhs-number/high"},        // "patient" is an NHS word
		{"ref 943 476 5919", "uk-nhs-number/medium"},          // NHS grouping, allocated (test) range
		{"ref 401 023 2137", "uk-nhs-number/medium"},          // England and Wales range
		{"9434765919", ""},                                    // unbroken, no context
		{"call 212 555 0121", ""},                             // no NHS range starts with 2 (US grouping)
		{"Tel: 401 023 2137", ""},                             // a phone word just before
		{"+44 (0) 401 023 2137", ""},                          // after "(0)"
		{"0161 496 0000, 07700 900123, +44 20 7946 0958", ""}, // UK phone groupings
		{"+1 415 555 2671", ""},                               // international
		{"NHS no. 943 476 5918", ""},                          // check digit
		// NI number.
		{"NINO.AB123456C", "uk-nino/high"},
		{"ni no:ab123456c", "uk-nino/high"},
		{"AB-12-34-56-C", "uk-nino/medium"},
		{"AB.12.34.56.C", "uk-nino/medium"},
		{"QQ123456C", ""}, // HMRC's example: Q is never allocated
		// Cards.
		{"card 4111111111111111", "payment-card/high"},
		{"4111 1111 1111 1111", "payment-card/high"},       // grouped, major scheme
		{"4111.1111.1111.1111", "payment-card/high"},       // dotted
		{"4111 1111 1111 1111 12/27", "payment-card/high"}, // expiry after it
		{"4111111111111111", "payment-card/medium"},        // unbroken, major scheme
		{"Order 4111111111111111", ""},                     // a reference word just before
		{"tracking 4111111111111111", ""},                  //
		{"6759 6498 2643 8453", "payment-card/medium"},     // Maestro UK range, grouped
		{"6011000990139424", ""},                           // weak scheme, unbroken, no context
		{"ref 6000000000000006", ""},
		{"ref 6000 0000 0000 0007", ""},       // Luhn-valid, grouped, but in no scheme's range                       // no Maestro IIN range
		{"5612 3456 7890 1234 5678 9012", ""}, // card-length run inside a longer group
		{"0161-4111 1111 1111 1111", ""},
		{"ref 12-34 4111 1111 1111 1111", ""}, // after a group with another separator      // the tail of a longer group
		// VAT.
		{"VAT: 980 7806 84", "uk-vat/high"},  // no GB, next to "VAT"
		{"vat reg 980780684", "uk-vat/high"}, // lower case
		{"vat gb980780684", "uk-vat/high"},   //
		{"VAT.GB980780684", "uk-vat/high"},   //
		{"GBGD001", "uk-vat/medium"},         // government department
		{"vat no gbha599", "uk-vat/high"},    // health authority
		{"GBGD500", ""},                      // GD is 000-499
		{"GBHA499", ""},                      // HA is 500-999
		{"order 980780684", ""},              // 9 digits, no VAT word
		// IBAN.
		{"iban gb82west12345698765432", "iban/high"},
		{"iban: gb82 west 1234 5698 7654 32", "iban/high"},
		// Driving licence.
		{"licence MORGA657054SM9IJ", "uk-driving-licence/high"},
		{"licence MORGA657054SM9Ij", ""},                        // last character checked
		{"licence MORG9657054SM9IJ", "uk-driving-licence/high"}, // short surname, padded
		{"licence MO9GA657054SM9IJ", ""},                        // letters after the 9 padding
		// Postcodes (BS 7666 letter positions).
		{"address SW1A 2AA", "uk-postcode/medium"},
		{"in SW1A 2AA", "uk-postcode/low"},
		{"address QA1 2AA", ""},  // Q never first
		{"address AI1 2AA", ""},  // I never second
		{"address W1I 2AA", ""},  // I never third (A9A)
		{"address EC1C 2AA", ""}, // C never fourth (AA9A)
		{"address SW1A 2CA", ""}, // C never inward
	} {
		if got := matches(c.text); got != c.want {
			t.Errorf("%q:\n got  %s\n want %s", c.text, got, c.want)
		}
	}
}
