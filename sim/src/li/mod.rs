//! A fake Loja Integrada API (Tastypie shapes, naive São Paulo timestamps, scriptable faults).
