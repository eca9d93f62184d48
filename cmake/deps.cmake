# Dependencies, each from a Debian package. A missing one stops configure and names the package.
find_package(PkgConfig)
if(NOT PKG_CONFIG_FOUND)
  message(FATAL_ERROR "pkg-config not found: install the Debian package 'pkg-config' (or run scripts/setup)")
endif()

macro(ff_require_pc var module debpkg)
  pkg_check_modules(${var} QUIET IMPORTED_TARGET ${module})
  if(NOT ${var}_FOUND)
    message(FATAL_ERROR "${module} not found: install the Debian package '${debpkg}' (or run scripts/setup)")
  endif()
endmacro()

ff_require_pc(LUAJIT   luajit   libluajit-5.1-dev)
ff_require_pc(OPENBLAS openblas libopenblas-dev)
ff_require_pc(PNG      libpng   libpng-dev)
ff_require_pc(CAIRO    cairo    libcairo2-dev)

# GSL: its .pc file links gslcblas, whose cblas_* would shadow OpenBLAS's; link libgsl alone and
# let OpenBLAS provide the CBLAS symbols.
find_path(GSL_INCLUDE_DIR gsl/gsl_odeiv2.h)
find_library(GSL_LIBRARY gsl)
if(NOT GSL_INCLUDE_DIR OR NOT GSL_LIBRARY)
  message(FATAL_ERROR "GSL not found: install the Debian package 'libgsl-dev' (or run scripts/setup)")
endif()
add_library(ff_gsl INTERFACE)
target_include_directories(ff_gsl INTERFACE ${GSL_INCLUDE_DIR})
target_link_libraries(ff_gsl INTERFACE ${GSL_LIBRARY} PkgConfig::OPENBLAS m)

# MPI (optional): data-parallel training with `mpirun -np N fisherflow run ...` (core/dist). Open
# MPI from Debian (libopenmpi-dev, openmpi-bin); without it libfisherflow is the one-process build.
option(FF_MPI "Build the data-parallel layer with MPI when it is found" ON)
set(FF_HAVE_MPI OFF)
if(FF_MPI)
  find_package(MPI COMPONENTS C QUIET)
  if(MPI_C_FOUND)
    set(FF_HAVE_MPI ON)
    find_program(FF_MPIEXEC NAMES mpirun mpiexec HINTS ${MPI_HOME} PATH_SUFFIXES bin)
    message(STATUS "fisherflow: MPI found (MPI ${MPI_C_VERSION}, ${MPIEXEC_EXECUTABLE}): data-parallel build")
  else()
    message(STATUS "fisherflow: MPI not found: one-process build (install 'libopenmpi-dev openmpi-bin' for mpirun)")
  endif()
else()
  message(STATUS "fisherflow: MPI off (-DFF_MPI=OFF): one-process build")
endif()
