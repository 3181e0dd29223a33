// Loaded by every page (base.html): the `?` keyboard help. Page modules add their own shortcuts.
import { installHelp } from "./help.js";

installHelp();
