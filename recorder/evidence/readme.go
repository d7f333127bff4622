package evidence

import (
	"fmt"
	"strings"
	"time"
)

// readmeBody is README.txt after the header that names the case: what the bundle is and
// how to check it with standard tools only, first in Czech, then in English. %[1]s is the
// public key file, %[2]s the signature, %[3]s the manifest, %[4]s SHA256SUMS.
const readmeBody = `ČESKY

Tento balíček je kopie záznamu kamerového systému townwatch, předaná jako důkaz.
Obsahuje:
  <kamera>_<od>_<do>.mp4   záznam jedné kamery za uvedené období (MP4, bez překódování;
                           časy v názvu jsou v UTC)
  %[3]s            popis: kamery, časy, úseky bez záznamu, každý zdrojový soubor
                           záznamu s jeho otiskem SHA-256; kdo, proč a komu záznam předal;
                           číslo řádku v protokolu přístupů
  %[2]s        elektronický podpis souboru %[3]s (Ed25519)
  %[1]s
                           veřejný klíč, kterým se podpis ověřuje
  %[4]s               otisky SHA-256 souborů balíčku
  README.txt               tento návod

Ověření bez programu townwatch (Linux; ve Windows např. ve WSL nebo Git Bash):
  1. Rozbalte balíček do prázdné složky a v ní spusťte
       sha256sum -c %[4]s
     Všechny řádky musí končit „OK", jinak byl soubor změněn nebo poškozen.
  2. Ověřte podpis:
       openssl pkeyutl -verify -pubin -inkey %[1]s -rawin -in %[3]s -sigfile %[2]s
     Výsledek musí být „Signature Verified Successfully".
  3. Ověřte, že klíč patří městu. Otisk klíče vypíše
       openssl pkey -pubin -in %[1]s -outform DER | sha256sum
     Musí souhlasit (tytéž číslice, bez mezer) s otiskem, který město zveřejnilo
     (správce systému jej zjistí příkazem "townwatch key show"). Otisk uvedený výše
     v tomto souboru k tomu nestačí: kdo by balíček podvrhl, změnil by i jej.
  Podepsaný %[3]s obsahuje otisky záznamů, tohoto návodu i veřejného klíče, takže
  podpis chrání všechny soubory balíčku. Program townwatch provede všechny kroky najednou:
       townwatch verify BALÍČEK.zip -fingerprint "ZVEŘEJNĚNÝ OTISK"

ENGLISH

This bundle is a copy of footage recorded by the townwatch camera system, handed over as
evidence. It holds:
  <camera>_<from>_<to>.mp4  one camera's footage of the range (MP4, not re-encoded; the
                            times in the name are UTC)
  %[3]s             the description: cameras, times, parts without footage, every
                            recorded segment file the clip came from with its SHA-256; who
                            handed the footage out, why and to whom; the access-log row
  %[2]s         the Ed25519 signature of %[3]s
  %[1]s
                            the public key that checks the signature
  %[4]s                the SHA-256 digests of the bundle's files
  README.txt                this guide

Checking without townwatch (Linux; on Windows e.g. in WSL or Git Bash):
  1. Unpack the bundle into an empty directory and run there
       sha256sum -c %[4]s
     Every line must end in "OK"; otherwise a file was changed or damaged.
  2. Check the signature:
       openssl pkeyutl -verify -pubin -inkey %[1]s -rawin -in %[3]s -sigfile %[2]s
     It must print "Signature Verified Successfully".
  3. Check that the key is the town's. The key's fingerprint is printed by
       openssl pkey -pubin -in %[1]s -outform DER | sha256sum
     It must match (the same digits, without spaces) the fingerprint the town published
     (its administrator prints it with "townwatch key show"). The fingerprint written
     above in this file is not enough: whoever forged a bundle would change it too.
  The signed %[3]s holds the digests of the footage, of this guide and of the public
  key, so the signature covers every file of the bundle. townwatch does all the steps:
       townwatch verify BUNDLE.zip -fingerprint "PUBLISHED FINGERPRINT"
`

// readme is README.txt for a bundle described by m, with times shown in loc.
func readme(m *Manifest, loc *time.Location) string {
	local := func(t time.Time) string { return t.In(loc).Format("2006-01-02 15:04:05 MST") }
	utc := func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05Z") }
	var b strings.Builder
	b.WriteString("TOWNWATCH – DŮKAZNÍ BALÍČEK / EVIDENCE BUNDLE\n\n")
	fmt.Fprintf(&b, "Č.j. / Case:             %s\n", m.Case)
	fmt.Fprintf(&b, "Období / Range:          %s – %s (%s)\n", local(m.From), local(m.To), loc)
	fmt.Fprintf(&b, "                         %s – %s (UTC)\n", utc(m.From), utc(m.To))
	for _, c := range m.Cameras {
		fmt.Fprintf(&b, "Kamera / Camera:         %s: %s\n", c.Camera, c.File)
	}
	fmt.Fprintf(&b, "Vytvořeno / Created:     %s\n", utc(m.Created))
	fmt.Fprintf(&b, "Otisk klíče / Key fingerprint (SHA-256):\n                         %s\n\n", m.SigningKey.Fingerprint)
	fmt.Fprintf(&b, readmeBody, PublicKeyName, SignatureName, ManifestName, SumsName)
	return b.String()
}
