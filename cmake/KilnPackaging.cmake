# Everything `cmake --install` puts under the prefix, in one place:
#   bin/kiln                                 the compiler tool
#   lib/libkiln_runtime.so.*, .a             the runtime, shared and static
#   include/kiln/*.h, *.hpp                  its public headers
#   lib/cmake/kiln/                          find_package(kiln): kiln::runtime
#                                            (shared), kiln::runtime_static
#   lib/pkgconfig/kiln-runtime.pc            pkg-config --libs kiln-runtime
# Every installed file locates the prefix relative to itself, so the tree can
# be moved (and `cmake --install --prefix` works). examples/embed builds
# against it; tests/install checks it.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(KILN_CMAKE_INSTALL_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/kiln)

# LLVM may live outside the loader's default paths (/usr/lib/llvm-19/lib):
# keep the directories the tool was linked against in its installed RUNPATH.
set_target_properties(kiln PROPERTIES INSTALL_RPATH_USE_LINK_PATH ON)
install(TARGETS kiln RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})

# The static runtime is C++ inside: a C program linking it needs what the C++
# compiler adds to a link beyond the C compiler (libstdc++, libm). The shared
# libkiln_runtime.so records its own dependencies.
set(KILN_CXX_RUNTIME_LIBS ${CMAKE_CXX_IMPLICIT_LINK_LIBRARIES})
list(REMOVE_ITEM KILN_CXX_RUNTIME_LIBS ${CMAKE_C_IMPLICIT_LINK_LIBRARIES})
target_link_libraries(kiln_runtime INTERFACE ${KILN_CXX_RUNTIME_LIBS})
set_target_properties(kiln_runtime_shared PROPERTIES EXPORT_NAME runtime)
set_target_properties(kiln_runtime PROPERTIES EXPORT_NAME runtime_static)
install(TARGETS kiln_runtime_shared kiln_runtime EXPORT kilnTargets
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/runtime/include/kiln DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
        FILES_MATCHING PATTERN "*.h" PATTERN "*.hpp")

install(EXPORT kilnTargets NAMESPACE kiln:: DESTINATION ${KILN_CMAKE_INSTALL_DIR})
configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/kilnConfig.cmake.in ${PROJECT_BINARY_DIR}/kilnConfig.cmake
                              INSTALL_DESTINATION ${KILN_CMAKE_INSTALL_DIR})
# find_package(kiln 0.1) accepts any 0.x from 0.1 on, never 1.x.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/kilnConfigVersion.cmake COMPATIBILITY SameMajorVersion)
install(FILES ${PROJECT_BINARY_DIR}/kilnConfig.cmake ${PROJECT_BINARY_DIR}/kilnConfigVersion.cmake
        DESTINATION ${KILN_CMAKE_INSTALL_DIR})

# pkg-config finds the prefix from the .pc file's own folder (${pcfiledir}).
set(KILN_PC_TO_PREFIX ${CMAKE_INSTALL_PREFIX})
cmake_path(RELATIVE_PATH KILN_PC_TO_PREFIX BASE_DIRECTORY ${CMAKE_INSTALL_FULL_LIBDIR}/pkgconfig)
list(TRANSFORM KILN_CXX_RUNTIME_LIBS PREPEND -l OUTPUT_VARIABLE KILN_PC_CXX_LIBS)
list(JOIN KILN_PC_CXX_LIBS " " KILN_PC_CXX_LIBS)
configure_file(${CMAKE_CURRENT_LIST_DIR}/kiln-runtime.pc.in ${PROJECT_BINARY_DIR}/kiln-runtime.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/kiln-runtime.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
