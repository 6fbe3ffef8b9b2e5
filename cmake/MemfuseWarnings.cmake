# memfuse_set_warnings(target): the warning set every first-party target uses.
function(memfuse_set_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wshadow
                         -Wnon-virtual-dtor -Wold-style-cast -Wcast-align
                         -Woverloaded-virtual -Wimplicit-fallthrough)
  if(MEMFUSE_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()
