"""Other tools' file formats: circuit graphs (MIB / EAP-IG JSON) now; others later."""
