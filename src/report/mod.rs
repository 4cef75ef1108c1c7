//! The readiness checklist (`arauto check`) and delivery reports (`arauto report`).
