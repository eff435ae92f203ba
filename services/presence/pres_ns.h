/* pres_ns: the XML namespaces of the presence documents (RFC 3863, 4479, 4480, 4482,
 * 5196, 4745, 5025). */
#ifndef SKEIN_PRES_NS_H
#define SKEIN_PRES_NS_H

#define PRES_NS_PIDF  "urn:ietf:params:xml:ns:pidf"
#define PRES_NS_DM    "urn:ietf:params:xml:ns:pidf:data-model"
#define PRES_NS_RPID  "urn:ietf:params:xml:ns:pidf:rpid"
#define PRES_NS_CIPID "urn:ietf:params:xml:ns:pidf:cipid"
#define PRES_NS_CAPS  "urn:ietf:params:xml:ns:pidf:caps"
#define PRES_NS_CP    "urn:ietf:params:xml:ns:common-policy"
#define PRES_NS_PR    "urn:ietf:params:xml:ns:pres-rules"

#endif
