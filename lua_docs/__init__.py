"""The Lua docs scripts read at run time, installed as the data package ``kosmo_runtime.lua_docs``."""
