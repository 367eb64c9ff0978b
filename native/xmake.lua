-- libinfini_qwen3.so: the Qwen3 model on InfiniCore's C API. Built by `python -m infini_qwen3.build`,
-- which sets INFINI_QWEN3_INFINI_ROOT to the InfiniCore install (include/ and lib/).
add_rules("mode.release", "mode.debug")
set_languages("cxx17")

local infini_root = os.getenv("INFINI_QWEN3_INFINI_ROOT") or os.getenv("INFINI_ROOT")

target("infini_qwen3")
    set_kind("shared")
    set_warnings("all", "error")
    add_files("src/*.cpp")
    add_includedirs("include", {public = true})
    add_cxflags("-fPIC", "-fvisibility=hidden")
    -- the ranks of a CPU model share the cores: each rank's thread sets its OpenMP team size
    add_cxflags("-fopenmp")
    add_shflags("-fopenmp", {force = true})
    if infini_root then
        add_includedirs(path.join(infini_root, "include"))
        add_linkdirs(path.join(infini_root, "lib"))
        -- DT_RPATH (not RUNPATH) so that libinfiniop finds libinfinirt too when Python dlopen()s us.
        add_shflags("-Wl,--disable-new-dtags,-rpath," .. path.join(infini_root, "lib"), {force = true})
    end
    add_links("infiniop", "infinirt", "infiniccl")
target_end()
